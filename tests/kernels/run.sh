#!/usr/bin/env bash
# The kernel-matrix tier: the BPF tests, the ingressctl tests and an agent smoke test on Debian's
# own kernels (bullseye's 5.10, bookworm's 6.1, bookworm's 6.12) under qemu TCG, plus the host's
# kernel, all running tests/kernels/payload.sh on a build directory of this checkout.
#
#   bash tests/kernels/run.sh BUILD_DIR
#
# 1. Fetch: a scratch apt configuration (never the machine's own sources) resolves the newest
#    linux-image-*-amd64-unsigned of each series the archive offers now; the .deb is cached by
#    exact version under ~/.cache/sluice/kernels and verified by apt against the signed Release.
# 2. Prepare: vmlinuz plus the modules of modules.list (and their dependencies, decompressed)
#    go into a per-version directory; each run packs them with busybox and init.sh into an
#    initramfs (busybox cpio: the cpio package is not installed).
# 3. Boot: qemu TCG only (/dev/kvm exists here but cannot run these kernels), the host's root
#    shared read-only over virtio-9p and chrooted into, the run directory shared writable for
#    results. A guest that panics, or hangs (no progress for SLUICE_KERNELS_STALL seconds), is
#    stopped, and its unfinished groups are reported as failed.
# 4. Report: one line per kernel and group, then "kernels: N passed, M failed" (read by
#    scripts/test.sh), and the feature table docs/kernels.md is made from.
#
# Knobs (environment): SLUICE_KERNELS (default "5.10 6.1 6.12 host"), SLUICE_KERNEL_CACHE,
# SLUICE_KERNELS_JOBS (guests at once), SLUICE_KERNELS_STALL (seconds without progress before a
# guest is stopped), SLUICE_KERNELS_TIMEOUT (seconds per guest at most),
# SLUICE_KERNELS_CPU/MEM (qemu), SLUICE_KERNELS_APPEND (extra kernel parameters, e.g.
# lockdown=confidentiality), and for the payload: SLUICE_KERNELS_GROUPS (default all),
# SLUICE_KERNELS_VARIANTS (root caps noperfmon), SLUICE_KERNELS_MIB (agent transfers, default 16),
# SLUICE_KERNELS_BPF_FILTER / _CLI_FILTER (gtest filters), SLUICE_KERNELS_AGENT_LOG_LEVEL.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

TIER=kernels
KERNELS_WANTED=${SLUICE_KERNELS:-5.10 6.1 6.12 host}
CACHE=${SLUICE_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kernels}
JOBS=${SLUICE_KERNELS_JOBS:-3}
# A guest is stopped when it stops making progress: nothing added to its console or its output
# share (results, logs) for GUEST_STALL seconds is a hang (the longest quiet stretch of a healthy
# payload, the l4 group, is about 100 s under load). GUEST_TIMEOUT only caps a guest that keeps
# writing and never ends. A fixed deadline short enough to catch hangs quickly
# killed healthy guests whenever the machine ran slow (380 s against 420 s seen here).
GUEST_STALL=${SLUICE_KERNELS_STALL:-240}
GUEST_TIMEOUT=${SLUICE_KERNELS_TIMEOUT:-1200}
GUEST_MEM=${SLUICE_KERNELS_MEM:-1536}
# qemu64, not max: TCG emulates max's AVX2/AVX-512 paths (which glibc and OpenSSL then pick)
# slower than baseline x86-64; measured 101 s against 142 s for the same payload on 6.1.
GUEST_CPU=${SLUICE_KERNELS_CPU:-qemu64}
GUEST_APPEND=${SLUICE_KERNELS_APPEND:-}
GROUPS_WANTED=${SLUICE_KERNELS_GROUPS:-}

# Each series: label ; regex of the package names ; where it comes from. The newest version
# among matching packages wins, whichever suite offers it.
SERIES=(
  '5.10;^linux-image-5\.10\.0-[0-9]+-amd64-unsigned$;bullseye, via bullseye-security'
  '6.1;^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$;bookworm, via bookworm-security'
  '6.12;^linux-image-6\.12\.[0-9]+\+(deb12|bpo)[0-9.]*-amd64-unsigned$;bookworm-security or bookworm-backports'
)

die() {
  echo "$TIER: error: $*" >&2
  echo "$TIER: 0 passed, 1 failed"
  exit 1
}
note() { echo "$TIER: $*"; }

# ---- arguments and tools -----------------------------------------------------------------------

[[ $# == 1 ]] || die "usage: $0 BUILD_DIR (a configured and built build directory)"
[[ -d $1 ]] || die "build directory '$1' does not exist (build first: cmake -S . -B build -G Ninja && ninja -C build)"
BUILD=$(cd "$1" && pwd)
# Both paths travel on the guest's kernel command line, which splits at spaces.
[[ $BUILD$here != *[[:space:]]* ]] || die "paths with spaces cannot reach the guest: $BUILD, $here"
for bin in tests/bpf/test_bpf_splice tests/bpf/test_bpf_xdp tests/cli/test_ingressctl cli/ingressctl userspace/app/ingress-agent; do
  [[ -x $BUILD/$bin ]] || die "$BUILD/$bin is missing: build it first (ninja -C $1)"
done
[[ $(id -u) == 0 ]] || die "needs root (qemu's 9p export of / and the host run's namespaces)"

need_tools() {
  local missing=() t
  for t in qemu-system-x86_64 busybox depmod modinfo apt-get apt-cache dpkg-deb setpriv unshare \
    bpftool clang python3 curl flock timeout xz; do
    command -v "$t" > /dev/null || missing+=("$t")
  done
  ((${#missing[@]} == 0)) ||
    die "missing tools: ${missing[*]} (bash scripts/install-deps.sh installs them)"
  [[ $(busybox --list) == *$'\ncpio\n'* ]] || die "busybox has no cpio applet (install busybox-static)"
  ldd "$(command -v busybox)" > /dev/null 2>&1 &&
    die "busybox is dynamically linked; the initramfs needs busybox-static"
  return 0
}
need_tools

RUN=$BUILD/kernels/last
rm -rf "$RUN"
mkdir -p "$RUN" "$CACHE"
t0=$SECONDS

# ---- fetch: scratch apt configuration ----------------------------------------------------------

# The machine's own Debian mirrors (deb822 or one-line sources), so the scratch configuration
# reaches the archive the same way apt does here.
mirror() {  # main|security (SLUICE_DEBIAN_MIRROR / SLUICE_DEBIAN_SECURITY_MIRROR override)
  local want=$1 url
  if [[ $want == main && -n ${SLUICE_DEBIAN_MIRROR:-} ]]; then echo "$SLUICE_DEBIAN_MIRROR"; return; fi
  if [[ $want == security && -n ${SLUICE_DEBIAN_SECURITY_MIRROR:-} ]]; then
    echo "$SLUICE_DEBIAN_SECURITY_MIRROR"
    return
  fi
  url=$(awk -v want="$want" '
    /^URIs:/ { uris = $2 } /^Suites:/ { suites = $0 }
    /^$/ { emit() } END { emit() }
    function emit() {
      if (uris != "" && ((want == "security") == (suites ~ /-security/))) { print uris; exit }
      uris = ""; suites = ""
    }' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  if [[ -z $url && -f /etc/apt/sources.list ]]; then
    url=$(awk -v want="$want" '$1 == "deb" && (want == "security") == ($3 ~ /-security/) { print $2; exit }' \
      /etc/apt/sources.list)
  fi
  if [[ -z $url ]]; then
    [[ $want == security ]] && url=http://deb.debian.org/debian-security || url=http://deb.debian.org/debian
  fi
  echo "${url%/}"
}

APT_DIR=$CACHE/apt
apt_opts=(
  -o "Dir::Etc::sourcelist=$APT_DIR/sources.list" -o "Dir::Etc::sourceparts=$APT_DIR/parts"
  -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache"
  -o Acquire::Languages=none -o APT::Sandbox::User=root -o Debug::NoLocking=0
)

apt_update() {
  local main security keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  main=$(mirror main)
  security=$(mirror security)
  [[ -f $keyring ]] || die "$keyring is missing (package debian-archive-keyring)"
  mkdir -p "$APT_DIR/parts" "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
  cat > "$APT_DIR/sources.list" <<EOF
deb [signed-by=$keyring] $security bullseye-security main
deb [signed-by=$keyring] $security bookworm-security main
deb [signed-by=$keyring] $main bookworm-backports main
EOF
  if ! apt-get "${apt_opts[@]}" -qq update > "$RUN/apt-update.log" 2>&1 ||
    grep -qE '^(W|E): (Failed|Some index files failed)' "$RUN/apt-update.log"; then
    cat "$RUN/apt-update.log" >&2
    die "apt-get update of the scratch configuration ($APT_DIR/sources.list) failed"
  fi
}

resolve() {  # REGEX: "PACKAGE VERSION" of the newest matching package
  local regex=$1 best_pkg="" best_ver="" pkg ver names
  names=$(apt-cache "${apt_opts[@]}" pkgnames linux-image- | grep -E "$regex" || true)
  [[ -n $names ]] || return 1
  while read -r pkg ver; do
    if [[ -z $best_ver ]] || dpkg --compare-versions "$ver" gt "$best_ver"; then
      best_pkg=$pkg best_ver=$ver
    fi
  done < <(apt-cache "${apt_opts[@]}" madison $names | awk -F'|' '{ gsub(/ /, ""); print $1, $2 }')
  [[ -n $best_ver ]] && echo "$best_pkg $best_ver"
}

download() {  # PACKAGE VERSION: prints the path of the cached .deb (fetched if missing)
  local pkg=$1 ver=$2 debs=$CACHE/debs
  mkdir -p "$debs"
  local deb
  deb=$(find "$debs" -maxdepth 1 -name "${pkg}_${ver//:/%3a}_*.deb" | head -1)
  if [[ -z $deb ]]; then
    if ! (cd "$debs" && apt-get "${apt_opts[@]}" -qq download "$pkg=$ver") \
      > "$RUN/download-$pkg.log" 2>&1; then
      cat "$RUN/download-$pkg.log" >&2
      return 1
    fi
    # By name, not by mtime: apt stamps the file with whole seconds (the server's time), which
    # can read older than a sources.list written in the same second.
    deb=$(find "$debs" -maxdepth 1 -name "${pkg}_${ver//:/%3a}_*.deb" | head -1)
    [[ -n $deb ]] || { echo "apt-get download of $pkg $ver left no .deb in $debs" >&2; return 1; }
  fi
  echo "$deb"
}

# ---- prepare: kernel image and staged modules --------------------------------------------------

# Prints the modules NAME needs, then NAME, as paths relative to MODDIR, deps first. Built-in
# modules print nothing. Uses modinfo on the files themselves (no depmod of the whole tree,
# which takes seconds for 6.12's .ko.xz).
declare -A visited
module_closure() {  # MODDIR NAME
  local moddir=$1 name=${2//-/_} rel dep
  [[ -z ${visited[$name]:-} ]] || return 0
  visited[$name]=1
  if grep -qE "/${name//_/[-_]}\.ko$" "$moddir/modules.builtin"; then
    return 0
  fi
  rel=$(grep -E "/${name//_/[-_]}\.ko(\.xz|\.zst|\.gz)?$" "$moddir/.ko-index" | head -1)
  [[ -n $rel ]] || return 1
  for dep in $(modinfo -F depends "$moddir/$rel" | tr ',' ' ') \
    $(modinfo -F softdep "$moddir/$rel" | sed -n 's/.*pre: *\([^:]*\).*/\1/p' | sed 's/ post$//'); do
    module_closure "$moddir" "$dep" || echo "warning: $name needs $dep, which is not found" >&2
  done
  echo "$rel"
}

# A prepared kernel is reused while modules.list and the layout prepare() writes stay the same;
# bump PREPARE_FORMAT when prepare() changes what it writes.
PREPARE_FORMAT=1
modules_hash() { { echo "$PREPARE_FORMAT"; cat "$here/modules.list"; } | sha256sum | cut -c1-16; }

prepare() {  # DEB KDIR: vmlinuz, kver and modroot/ in KDIR (cached by version and modules.list)
  local deb=$1 kdir=$2 hash
  hash=$(modules_hash)
  [[ -f $kdir/ready && $(cat "$kdir/ready") == "$hash" ]] && return 0
  rm -rf "$kdir"
  mkdir -p "$kdir"
  # Called as `prepare ... || die`, so set -e is off in here: every step checks itself, and
  # "ready" is written last, only when all of them worked.
  local x=$kdir/extract
  dpkg-deb -x "$deb" "$x" || { echo "dpkg-deb -x $deb failed" >&2; return 1; }
  local kver
  kver=$(ls "$x/lib/modules" 2>/dev/null)
  [[ -n $kver && -f $x/boot/vmlinuz-$kver ]] || { echo "$deb holds no kernel image" >&2; return 1; }
  cp "$x/boot/vmlinuz-$kver" "$kdir/vmlinuz" && cp "$x/boot/config-$kver" "$kdir/config" &&
    echo "$kver" > "$kdir/kver" || return 1
  local moddir=$x/lib/modules/$kver
  (cd "$moddir" && find kernel -name '*.ko*') > "$moddir/.ko-index"
  local stage=$kdir/modroot/lib/modules/$kver
  mkdir -p "$stage"
  cp "$moddir"/modules.{builtin,builtin.modinfo,order} "$stage/" 2>/dev/null || true
  : > "$kdir/boot-modules"
  local name when rel
  visited=()
  while read -r name when _; do
    [[ -n $name && $name != \#* ]] || continue
    local closure
    if ! closure=$(module_closure "$moddir" "$name"); then
      if [[ $when == boot ]]; then
        echo "kernel $kver has no module $name, which the guest needs to boot" >&2
        return 1
      fi
      echo "$kver: no module $name (skipped)" >> "$kdir/notes"
      continue
    fi
    for rel in $closure; do
      mkdir -p "$stage/$(dirname "$rel")"
      case $rel in  # busybox insmod reads plain .ko only
        *.xz) xz -dc "$moddir/$rel" > "$stage/${rel%.xz}" || return 1; rel=${rel%.xz} ;;
        *) cp "$moddir/$rel" "$stage/$rel" || return 1 ;;
      esac
      if [[ $when == boot ]] && ! grep -qx "$rel" "$kdir/boot-modules"; then
        echo "$rel" >> "$kdir/boot-modules"
      fi
    done
  done < "$here/modules.list"
  depmod -b "$kdir/modroot" "$kver" || return 1
  rm -rf "$x"
  echo "$hash" > "$kdir/ready"
}

# Old versions of a series go once a newer one is prepared, so the cache does not grow forever.
prune() {  # REGEX KEEP_DIR
  local dir
  for dir in "$CACHE"/linux-image-*; do
    [[ -d $dir && $dir != "$2" ]] || continue
    [[ $(basename "$dir" | cut -d_ -f1) =~ $1 ]] && rm -rf "$dir"
  done
  find "$CACHE/debs" -name 'linux-image-*.deb' ! -newer "$2/ready" -mtime +30 -delete 2>/dev/null || true
}

declare -A K_PKG K_VER K_DIR K_KVER
fetch_all() {
  apt_update
  local entry label regex what pkg ver deb kdir
  for entry in "${SERIES[@]}"; do
    IFS=';' read -r label regex what <<< "$entry"
    [[ " $KERNELS_WANTED " == *" $label "* ]] || continue
    read -r pkg ver < <(resolve "$regex") || die "no package matching $regex in the archive ($what)"
    deb=$(download "$pkg" "$ver") || die "download of $pkg $ver failed"
    kdir=$CACHE/${pkg}_${ver}
    prepare "$deb" "$kdir" || die "could not prepare $pkg $ver (from $deb)"
    prune "$regex" "$kdir"
    K_PKG[$label]=$pkg K_VER[$label]=$ver K_DIR[$label]=$kdir K_KVER[$label]=$(cat "$kdir/kver")
    note "$label: $pkg $ver ($what), kernel ${K_KVER[$label]}"
  done
}

# ---- boot --------------------------------------------------------------------------------------

initramfs() {  # LABEL OUT: init.sh + busybox-static + the staged modules, as a newc cpio
  local kdir=${K_DIR[$1]} out=$2 stage
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/etc/sluice" "$stage/proc" "$stage/sys" "$stage/dev" "$stage/lib"
  cp "$(readlink -f "$(command -v busybox)")" "$stage/bin/busybox"
  cp "$here/init.sh" "$stage/init"
  chmod 755 "$stage/init"
  cp -a "$kdir/modroot/lib/modules" "$stage/lib/"
  cp "$kdir/boot-modules" "$stage/etc/sluice/boot-modules"
  (cd "$stage" && find . | busybox cpio -o -H newc 2>/dev/null) > "$out"
  rm -rf "$stage"
}

# The payload's knobs, as a file in its output directory (payload.sh sources it).
payload_env() {  # DIR
  local name
  for name in SLUICE_KERNELS_VARIANTS SLUICE_KERNELS_MIB SLUICE_KERNELS_BPF_FILTER \
    SLUICE_KERNELS_CLI_FILTER SLUICE_KERNELS_AGENT_LOG_LEVEL; do
    [[ -z ${!name:-} ]] || printf 'export %s=%q\n' "$name" "${!name}"
  done > "$1/payload.env"
}

# Runs one guest to completion, or until watch_run stops it. Writes DIR/qemu.status (the report prints it).
boot_guest() {  # LABEL
  local label=$1 dir=$RUN/$1 rc=0
  mkdir -p "$dir"
  payload_env "$dir"
  initramfs "$label" "$dir/initramfs.cpio"
  local append="console=ttyS0 rdinit=/init panic=-1 oops=panic loglevel=4 quiet"
  append+=" sluice.payload=$here/payload.sh sluice.build=$BUILD sluice.out=$dir sluice.label=$label"
  [[ -z $GROUPS_WANTED ]] || append+=" sluice.groups=${GROUPS_WANTED// /,}"
  [[ -z $GUEST_APPEND ]] || append+=" $GUEST_APPEND"
  local started=$SECONDS
  # -accel tcg: never KVM (/dev/kvm exists but cannot run these kernels). -no-reboot: the
  # guest's reboot -f (or a panic, panic=-1) ends qemu.
  qemu-system-x86_64 \
    -accel tcg -cpu "$GUEST_CPU" -m "$GUEST_MEM" -smp 1 \
    -nodefaults -no-user-config -display none -no-reboot \
    -serial "file:$dir/console.log" \
    -kernel "${K_DIR[$label]}/vmlinuz" -initrd "$dir/initramfs.cpio" -append "$append" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$dir,mount_tag=sluiceout,security_model=none,multidevs=remap" \
    > "$dir/qemu.log" 2>&1 &
  watch_run $! "$dir" "$started" || rc=$?
  if [[ -n $WATCH_WHY ]]; then
    echo "guest killed: $WATCH_WHY" > "$dir/qemu.status"
  else
    echo "qemu exit $rc after $((SECONDS - started)) s" > "$dir/qemu.status"
  fi
}

# watch_run PID DIR STARTED: waits for PID (a child of this shell), killing it and its process
# group (TERM, then KILL) when nothing under DIR has grown for GUEST_STALL seconds or it has run
# GUEST_TIMEOUT seconds. Sets WATCH_WHY to why it killed (empty when PID ended by itself) and
# returns PID's exit status.
watch_run() {
  local pid=$1 dir=$2 started=$3 size last_size=-1 last_change=$SECONDS rc=0
  WATCH_WHY=""
  while kill -0 "$pid" 2>/dev/null; do
    size=$(find "$dir" -type f -printf '%s\n' 2>/dev/null | awk '{ n += $1 } END { print n + 0 }')
    if [[ $size != "$last_size" ]]; then
      last_size=$size last_change=$SECONDS
    elif ((SECONDS - last_change >= GUEST_STALL)); then
      WATCH_WHY="no progress (console and results unchanged) for $((SECONDS - last_change)) s, after $((SECONDS - started)) s"
    fi
    ((SECONDS - started < GUEST_TIMEOUT)) || WATCH_WHY="over its ${GUEST_TIMEOUT} s cap"
    if [[ -n $WATCH_WHY ]]; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      sleep 10
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 5
  done
  wait "$pid" || rc=$?
  return "$rc"
}

# The host's kernel: the same payload in private network and mount namespaces (own loopback,
# own bpffs), so nothing it starts meets the machine's other listeners or pins.
run_host() {
  local dir=$RUN/host rc=0 started=$SECONDS
  mkdir -p "$dir"
  payload_env "$dir"
  # setsid: the payload's own process group, so a stalled payload is killed with its children.
  setsid unshare --net --mount --propagation private \
    env SLUICE_GUEST=host bash -c '
      mount -t bpf bpf /sys/fs/bpf && ip link set lo up &&
      exec bash "$0" --build "$1" --out "$2" --label host --groups "$3"' \
    "$here/payload.sh" "$BUILD" "$dir" "${GROUPS_WANTED// /,}" > "$dir/console.log" 2>&1 &
  watch_run $! "$dir" "$started" || rc=$?
  if [[ -n $WATCH_WHY ]]; then
    echo "payload killed: $WATCH_WHY" > "$dir/qemu.status"
  else
    echo "payload exit $rc after $((SECONDS - started)) s" > "$dir/qemu.status"
  fi
}

# Guests at most JOBS at once (each is one TCG vCPU thread; three on two cores finished sooner
# than two then one). The host run is native and short, so it runs beside them.
run_all() {
  local label running=0
  for label in $KERNELS_WANTED; do
    if [[ $label == host ]]; then
      run_host &
      continue
    fi
    if ((running >= JOBS)); then
      wait -n || true
      running=$((running - 1))
    fi
    boot_guest "$label" &
    running=$((running + 1))
  done
  wait || true
}

# ---- report ------------------------------------------------------------------------------------

passed=0 failed=0

# What the payload should have reported: each groups/ file once per variant it names.
expected_groups() {
  local file name variants v
  for file in "$here"/groups/[0-9]*.sh; do
    name=$(basename "$file" .sh)
    name=${name#*-}
    if [[ -n $GROUPS_WANTED && " ${GROUPS_WANTED//,/ } " != *" $name "* ]]; then
      continue
    fi
    variants=$(sed -n 's/^# variants: *//p' "$file" | head -1)
    for v in ${variants:-root}; do
      if [[ -z ${SLUICE_KERNELS_VARIANTS:-} || " ${SLUICE_KERNELS_VARIANTS//,/ } " == *" $v "* ]]; then
        echo "$name $v"
      fi
    done
  done
}

report_kernel() {  # LABEL
  local label=$1 dir=$RUN/$1 status name p f s rest line
  status=$(cat "$dir/qemu.status" 2>/dev/null || echo "did not start")
  if [[ $label == host ]]; then
    note "host: kernel $(uname -r) (this machine, private namespaces), $status"
  else
    note "$label: ${K_PKG[$label]} ${K_VER[$label]} (${K_KVER[$label]}), $status"
  fi
  touch "$dir/results"
  while read -r name p f s rest; do
    [[ -n $name ]] || continue
    line=$(printf '%-24s %3d passed, %d failed, %d skipped' "$label $name:" "$p" "$f" "$s")
    note "$line${rest:+  ($rest)}"
    passed=$((passed + p))
    failed=$((failed + f))
  done < "$dir/results"
  local group variant why
  while read -r group variant; do
    if ! grep -qx "$group $variant" "$dir/finished" 2>/dev/null; then
      why="it never ran to its end ($status)"
    elif ! grep -qE "^$group(-[^ ]*)?\[$variant\] " "$dir/results"; then
      why="it ended without reporting a result"
    else
      continue
    fi
    note "$(printf '%-24s FAILED: %s' "$label ${group}[${variant}]:" "$why")"
    failed=$((failed + 1))
  done < <(expected_groups)
  [[ $label == host ]] && return 0
  # The guest's kernel must not have complained (BUG, WARNING, Oops, panic) while the payload ran.
  local splats
  splats=$(grep -aE 'BUG:|WARNING:|Oops|Kernel panic|general protection' "$dir/console.log" "$dir/dmesg.log" 2>/dev/null | head -5 || true)
  if [[ -n $splats ]]; then
    note "$(printf '%-24s FAILED: the kernel logged:' "$label kernel-log:")"
    sed 's/^/    /' <<< "$splats"
    failed=$((failed + 1))
  elif [[ -s $dir/dmesg.log ]]; then
    note "$(printf '%-24s %3d passed, %d failed, %d skipped' "$label kernel-log:" 1 0 0)  (no BUG/WARNING/Oops)"
    passed=$((passed + 1))
  fi
  if [[ $status != "qemu exit 0"* ]] || ! [[ -s $dir/results ]]; then
    echo "    last console lines ($dir/console.log):"
    tail -n 15 "$dir/console.log" 2>/dev/null | sed 's/^/    | /'
  fi
}

# kernel x feature, from the runs' results, tests and features files (docs/kernels.md).
feature_table() {
  python3 "$here/feature_table.py" "$RUN" $KERNELS_WANTED > "$RUN/features.md" || return 0
  note "feature table ($RUN/features.md):"
  sed 's/^/  /' "$RUN/features.md"
}

# Another run (another checkout, CI) may be fetching into the same cache: one at a time.
exec {cache_lock}> "$CACHE/.lock"
flock -w 600 "$cache_lock" || die "another run held $CACHE/.lock for 10 minutes"
fetch_all
flock -u "$cache_lock"
fetch_secs=$((SECONDS - t0))
bash "$here/probes/build.sh" "$BUILD/kernels/probes" || die "could not build the BPF probes"
note "fetched and prepared in ${fetch_secs} s; running: $KERNELS_WANTED ($JOBS at once; a guest silent for ${GUEST_STALL} s or running ${GUEST_TIMEOUT} s is stopped)"
run_all
for label in $KERNELS_WANTED; do report_kernel "$label"; done
feature_table
note "took $((SECONDS - t0)) s (fetch ${fetch_secs} s); logs under $RUN"
echo "$TIER: $passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# The kernel-matrix payload: everything tests/kernels/run.sh runs on each kernel, and what the
# Vagrant VMs run too (vagrant/README.md). It runs on the kernel under test, as root, with bpffs
# at /sys/fs/bpf and loopback up, and needs nothing but a build directory of this repository:
#
#   bash tests/kernels/payload.sh --build BUILD_DIR --out OUT_DIR [--label NAME] [--groups "a b"]
#
# It runs each groups/NN-name.sh in order, once per variant that file names in its
# "# variants:" line (root; caps = exactly the DaemonSet's capabilities; noperfmon = those
# minus CAP_PERFMON), and writes OUT_DIR/results, tests, features and logs/ (see lib.sh).
# A later payload (kTLS, XDP) is one more groups/ file; see docs/kernels.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$here/../.." && pwd)
BUILD="" OUT="" LABEL="" GROUPS_WANTED=""

usage() {
  echo "usage: $0 --build BUILD_DIR --out OUT_DIR [--label NAME] [--groups \"NAME ...\"]" >&2
  exit 2
}
while (($#)); do
  case $1 in
    --build) BUILD=${2:-}; shift 2 ;;
    --out) OUT=${2:-}; shift 2 ;;
    --label) LABEL=${2:-}; shift 2 ;;
    --groups) GROUPS_WANTED=${2:-}; shift 2 ;;
    *) usage ;;
  esac
done
[[ -n $BUILD && -n $OUT ]] || usage
[[ -d $BUILD ]] || { echo "payload: build directory $BUILD does not exist" >&2; exit 2; }
BUILD=$(cd "$BUILD" && pwd)
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
LABEL=${LABEL:-$(uname -r)}
PAYLOAD_T0=$(date +%s)
export SRC BUILD OUT LABEL PAYLOAD_T0
# shellcheck source=tests/kernels/lib.sh
source "$here/lib.sh"
# Knobs of the host's run (tests/kernels/run.sh writes them; the kernel command line cannot carry
# them all): SLUICE_KERNELS_MIB, SLUICE_KERNELS_VARIANTS, SLUICE_KERNELS_*_FILTER, ...
if [[ -f $OUT/payload.env ]]; then
  # shellcheck disable=SC1091
  source "$OUT/payload.env"
fi

# Nothing may be left from an earlier run in the same directory (Vagrant reruns, host reruns).
: > "$OUT/results"
: > "$OUT/finished"
: > "$OUT/tests"
: > "$OUT/features"

preflight() {  # what every group relies on; a failure here is one failed line, not a hang
  local missing=()
  mountpoint -q /sys/fs/bpf || missing+=("bpffs at /sys/fs/bpf")
  [[ $(id -u) == 0 ]] || missing+=("root")
  command -v setpriv > /dev/null || missing+=("setpriv (util-linux)")
  ip link show lo 2>/dev/null | grep -q 'UP' || missing+=("loopback up")
  if ((${#missing[@]})); then
    report "preflight[root]" 0 1 0 "missing: ${missing[*]}"
    return 1
  fi
}

wanted() {  # group name (file name without NN- and .sh) selected by --groups?
  [[ -z $GROUPS_WANTED ]] && return 0
  [[ " ${GROUPS_WANTED//,/ } " == *" $1 "* ]]
}

run_groups() {
  local file name variants variant rc
  for file in "$here"/groups/[0-9]*.sh; do
    name=$(basename "$file" .sh)
    name=${name#*-}
    wanted "$name" || continue
    variants=$(sed -n 's/^# variants: *//p' "$file" | head -1)
    for variant in ${variants:-root}; do
      if [[ -n ${SLUICE_KERNELS_VARIANTS:-} && " ${SLUICE_KERNELS_VARIANTS//,/ } " != *" $variant "* ]]; then
        continue
      fi
      log "group $name [$variant]"
      rc=0
      # Each group in its own process with the variant's privileges; its result lines are its
      # own business, so a group that dies only loses its own lines (the host notices).
      export VARIANT=$variant
      as_variant "$variant" bash "$file" || rc=$?
      ((rc == 0)) || log "group $name [$variant] exited with $(exit_text "$rc")"
      # The host checks that every group ran to its end: a guest stopped in the middle of one
      # may already have reported some of its parts.
      echo "$name $variant" >> "$OUT/finished"
    done
  done
}

# The feature probes: run.sh compiles them on the host before booting a guest (whose root is
# read-only); a VM or a host run without them compiles them here.
ensure_probes() {
  [[ -d $BUILD/kernels/probes ]] || bash "$here/probes/build.sh" "$BUILD/kernels/probes" ||
    log "could not build the feature probes (clang?); the features group will say so"
}

summary() {  # one line per group, then the total (what a VM's provisioning output shows)
  local name p f s rest total_p=0 total_f=0
  while read -r name p f s rest; do
    log "$name: $p passed, $f failed, $s skipped${rest:+ ($rest)}"
    total_p=$((total_p + p)) total_f=$((total_f + f))
  done < "$OUT/results"
  echo "payload: $total_p passed, $total_f failed"
}

log "kernel $(uname -r) ($LABEL), build $BUILD, results in $OUT"
feature kernel "$(uname -r)"
ensure_probes
preflight && run_groups
# The kernel's own log of the run, for the host to scan for BUG/WARNING/Oops (not on the host
# itself, whose log belongs to everything else running there).
[[ ${SLUICE_GUEST:-} == host ]] || dmesg > "$OUT/dmesg.log" 2>&1 || true
log "done"
summary
# Exit status: failures are in the results file; the host counts them.
! awk '$3 > 0 { bad = 1 } END { exit !bad }' "$OUT/results"

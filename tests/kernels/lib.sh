# shellcheck shell=bash
# Helpers of the kernel-matrix payload (tests/kernels/payload.sh and groups/*.sh). Sourced, never
# run. The payload runs on the kernel under test: a qemu guest (chroot of the host's root), a
# Vagrant VM, or the host itself in private namespaces. Everything here is plain bash plus the
# tools of the host's root (python3, curl, setpriv, bpftool, ip, modprobe).
#
# Result protocol: every group appends lines "NAME PASSED FAILED SKIPPED NOTE..." to
# $OUT/results (NAME is group[variant], e.g. "bpf[caps]"), per-test outcomes "NAME TEST STATUS"
# to $OUT/tests, and "FEATURE VALUE..." facts to $OUT/features. The host reads those files;
# a group that never wrote its line is reported as failed by the host.

# The DaemonSet's capabilities (k8s/base/daemonset.yaml: drop ALL, add these five).
DAEMONSET_CAPS=(bpf perfmon net_admin sys_resource net_bind_service)

log() { printf "payload[%s] %4ds: %s\n" "$(uname -r)" "$(($(date +%s) - ${PAYLOAD_T0:-$(date +%s)}))" "$*"; }

# report NAME PASSED FAILED SKIPPED NOTE: one result line.
report() {
  local name=$1 passed=$2 failed=$3 skipped=$4
  shift 4
  echo "$name $passed $failed $skipped ${*:-}" >> "$OUT/results"
  log "$name: $passed passed, $failed failed, $skipped skipped${*:+ ($*)}"
}

# test_outcome NAME TEST STATUS: one per-test line (STATUS ok|FAILED|SKIPPED).
test_outcome() { echo "$1 $2 $3" >> "$OUT/tests"; }

# feature NAME VALUE...: one kernel fact for docs/kernels.md.
feature() {
  local name=$1
  shift
  echo "$name $*" >> "$OUT/features"
  log "feature $name: $*"
}

# Checks of one group: begin_group NAME, then check NAME COMMAND... per check (its output goes
# to the group's log), then group_report prints the group's line.
checks_passed=0 checks_failed=0 checks_failures=()
begin_group() {
  GROUP_NAME=$1 LOG="$OUT/logs/$1.log"
  checks_passed=0 checks_failed=0 checks_failures=()
  : > "$LOG"
}
check() {
  local name=$1
  shift
  if "$@" >> "$LOG" 2>&1; then
    checks_passed=$((checks_passed + 1))
    test_outcome "$GROUP_NAME" "$name" ok
    log "  ok   $name"
  else
    checks_failed=$((checks_failed + 1))
    checks_failures+=("$name")
    test_outcome "$GROUP_NAME" "$name" FAILED
    log "  FAIL $name (log: $LOG)"
  fi
}
# check_lines FILE: counts the checks a helper already evaluated and printed, one per line as
# "ok   NAME -- detail" or "FAIL NAME -- why" (other lines are ignored). A file without any
# counts one failure.
check_lines() {
  local file=$1 line name any=0
  while IFS= read -r line; do
    case $line in
      "ok   "*) name=${line#ok   } ;;
      "FAIL "*) name=${line#FAIL } ;;
      *) continue ;;
    esac
    name=${name%% -- *}
    any=1
    echo "$line" >> "$LOG"
    if [[ $line == ok* ]]; then
      check "$name" true
    else
      check "$name" false
    fi
  done < "$file"
  ((any)) || check "$(basename "$file") printed results" false
}
group_report() {
  local note=""
  ((${#checks_failures[@]})) && note="failed: $(IFS=,; echo "${checks_failures[*]}")"
  report "$GROUP_NAME" "$checks_passed" "$checks_failed" 0 "$note"
}

# run_gtest NAME BINARY [ARGS...]: runs a Google Test binary and reports its counts. A binary
# that dies (signal, abort) before its summary counts one extra failure naming the test it was in,
# so a crash can never read as a pass.
run_gtest() {
  local name=$1 bin=$2
  shift 2
  local log="$OUT/logs/$name.log" rc=0
  if [[ ! -x $bin ]]; then
    report "$name" 0 1 0 "missing binary $bin"
    return
  fi
  "$bin" --gtest_color=no "$@" > "$log" 2>&1 || rc=$?
  local passed failed skipped note=""
  passed=$(grep -cE '^\[       OK \] .* \([0-9]+ ms\)$' "$log" || true)
  failed=$(grep -cE '^\[  FAILED  \] .* \([0-9]+ ms\)$' "$log" || true)
  skipped=$(grep -cE '^\[  SKIPPED \] .* \([0-9]+ ms\)$' "$log" || true)
  local t
  while read -r t; do test_outcome "$name" "$t" ok; done \
    < <(sed -nE 's/^\[       OK \] ([^ ]+) \([0-9]+ ms\)$/\1/p' "$log")
  while read -r t; do test_outcome "$name" "$t" FAILED; done \
    < <(sed -nE 's/^\[  FAILED  \] ([^ ]+) \([0-9]+ ms\)$/\1/p' "$log")
  while read -r t; do test_outcome "$name" "$t" SKIPPED; done \
    < <(sed -nE 's/^\[  SKIPPED \] ([^ ]+) \([0-9]+ ms\)$/\1/p' "$log")
  if ((failed)); then
    note="failed: $(sed -nE 's/^\[  FAILED  \] ([^ ]+) \([0-9]+ ms\)$/\1/p' "$log" | paste -sd,)"
  fi
  if ! grep -qE '^\[==========\] [0-9]+ tests? from .* ran\.' "$log"; then
    local last
    last=$(sed -nE 's/^\[ RUN      \] (.*)$/\1/p' "$log" | tail -1)
    failed=$((failed + 1))
    note="${note:+$note; }died ($(exit_text "$rc")) in ${last:-startup}"
    test_outcome "$name" "${last:-startup}" FAILED
  elif ((rc != 0 && failed == 0)); then
    failed=1
    note="exit status $rc without a failed test"
  fi
  report "$name" "$passed" "$failed" "$skipped" "$note"
}

exit_text() {  # an exit status as text: "signal 11 (SIGSEGV)" or "exit 3"
  local rc=$1
  if ((rc > 128)); then
    echo "signal $((rc - 128)) (SIG$(kill -l $((rc - 128))))"
  else
    echo "exit $rc"
  fi
}

# as_variant VARIANT COMMAND...: runs COMMAND as root (root) or as uid 0 with exactly the
# DaemonSet's capabilities (caps) or those minus CAP_PERFMON (noperfmon): the bounding set limits
# what an exec as root gets, as a container runtime does. no_new_privs mirrors
# allowPrivilegeEscalation: false.
as_variant() {
  local variant=$1
  shift
  local caps=()
  case $variant in
    root) "$@"; return ;;
    caps) caps=("${DAEMONSET_CAPS[@]}") ;;
    noperfmon) caps=(bpf net_admin sys_resource net_bind_service) ;;
    *) echo "unknown variant $variant" >&2; return 2 ;;
  esac
  local bounding="-all" c
  for c in "${caps[@]}"; do bounding+=",+$c"; done
  setpriv --bounding-set="$bounding" --inh-caps=-all --no-new-privs -- "$@"
}

# kmod_load MODULE: modprobe from the real /lib/modules, or from the staged tree of the qemu
# guest (the host's root it runs in has no modules for this kernel).
kmod_load() {
  if [[ -d /lib/modules/$(uname -r) ]]; then
    modprobe "$1"
  elif [[ -n ${SLUICE_MODROOT:-} ]]; then
    modprobe -d "$SLUICE_MODROOT" "$1"
  else
    echo "no modules for $(uname -r)" >&2
    return 1
  fi
}

# wait_for SECONDS COMMAND...: polls every 0.2 s (TCG makes startup slow, so callers are generous).
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# verifier_reason LOG: the line of a bpftool/libbpf load log that says why the load failed (the
# verifier's last message before its "processed N insns" summary, else libbpf's own error).
verifier_reason() {
  local why
  why=$(awk '/^-- END PROG LOAD LOG --/ || /^processed [0-9]+ insns/ { if (last != "") { print last; exit } }
             /^-- BEGIN PROG LOAD LOG --/ { next }
             /^;/ || /^$/ || /^libbpf:/ || /^[0-9]+: \(/ { next }
             { last = $0 }' "$1")
  [[ -n $why ]] || why=$(grep -m1 -E 'libbpf: .*(failed|error)|^Error' "$1" || true)
  echo "${why:-unknown}" | cut -c1-160
}

# bpf_load OBJECT PIN_DIR: loads every program of OBJECT with bpftool and pins them under
# PIN_DIR (removed again); the log goes to stdout. Maps the object pins by name land in the
# bpffs root, so those are removed too (they exist only for this load).
bpf_load() {
  local obj=$1 pins=$2 rc=0
  bpftool prog loadall "$obj" "$pins" 2>&1 || rc=$?
  rm -rf "$pins"
  rm -f /sys/fs/bpf/sluice_socks /sys/fs/bpf/sluice_socks_v3 /sys/fs/bpf/sluice_targets \
    /sys/fs/bpf/sluice_peers_v2 /sys/fs/bpf/sluice_flow_stats /sys/fs/bpf/sluice_verdicts
  return "$rc"
}

# probe_load NAME OBJECT [VARIANT]: a feature fact "yes" or "no (why)" from loading OBJECT.
probe_load() {
  local name=$1 obj=$2 variant=${3:-root} log
  log=$OUT/logs/probe-$name.log
  if [[ ! -f $obj ]]; then
    feature "$name" "not tried (missing $obj)"
  elif as_variant "$variant" bash -c "source '$SRC/tests/kernels/lib.sh'; bpf_load '$obj' /sys/fs/bpf/sluice-kt-probe-$$" > "$log" 2>&1; then
    feature "$name" yes
  else
    feature "$name" "no ($(verifier_reason "$log"))"
  fi
}

#!/usr/bin/env bash
# The real BPF objects of this build (every bpf/*.bpf.c, as compiled into BUILD/bpf/skel/) load
# and pass the verifier on this kernel. bpftool loads the same .bpf.o the skeletons embed, so a
# refusal shows the verifier's own words in the log (the test binaries load the skeleton itself).
# variants: root caps
set -euo pipefail
source "$SRC/tests/kernels/lib.sh"
begin_group "verify[$VARIANT]"

verifies() {  # OBJECT: loads, then prints what the kernel accepted
  local obj=$1 log
  log=$OUT/logs/verify-$VARIANT-$(basename "$obj" .bpf.o).log
  if bpf_load "$obj" "/sys/fs/bpf/sluice-kt-verify-$$" > "$log" 2>&1; then
    return 0
  fi
  echo "$(basename "$obj"): $(verifier_reason "$log") (full log: $log)"
  return 1
}

objects=("$BUILD"/bpf/skel/*.bpf.o)
if [[ ! -e ${objects[0]} ]]; then
  check "BPF objects built under $BUILD/bpf/skel" false
fi
# xdp_frontdoor.bpf.o holds a second program, sluice_xdp_synproxy, that needs the raw SYN-cookie
# helpers (6.0+). The agent turns its autoload off where they are missing, which bpftool cannot:
# there the object is loaded the agent's way (the front door's loader, through a test_bpf_xdp
# case), so the program the agent runs on this kernel is still what is verified.
frontdoor_plain() {
  local log=$OUT/logs/verify-$VARIANT-xdp_frontdoor-plain.log
  "$BUILD/tests/bpf/test_bpf_xdp" --gtest_filter=XdpFrontdoorTest.InScopeSynPasses > "$log" 2>&1 &&
    grep -q '^\[       OK \] XdpFrontdoorTest.InScopeSynPasses' "$log"
}
no_raw_cookies=false
grep -q '^syncookie_raw no' "$OUT/features" 2> /dev/null && no_raw_cookies=true
for obj in "${objects[@]}"; do
  [[ -e $obj ]] || continue
  if [[ $(basename "$obj") == xdp_frontdoor.bpf.o ]] && $no_raw_cookies; then
    check "xdp_frontdoor.bpf.o verifies without sluice_xdp_synproxy (no raw SYN-cookie helpers)" \
      frontdoor_plain
    continue
  fi
  check "$(basename "$obj") verifies" verifies "$obj"
done
group_report

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
for obj in "${objects[@]}"; do
  [[ -e $obj ]] || continue
  check "$(basename "$obj") verifies" verifies "$obj"
done
group_report

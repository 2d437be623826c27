#!/usr/bin/env bash
# tests/bpf (test_bpf_splice): the splice skeleton on this kernel with real loopback sockets.
# Under noperfmon the datapath cannot load; the binary must say so in test results, not crash.
# variants: root caps noperfmon
set -euo pipefail
source "$SRC/tests/kernels/lib.sh"
run_gtest "bpf[$VARIANT]" "$BUILD/tests/bpf/test_bpf_splice" ${SLUICE_KERNELS_BPF_FILTER:+"--gtest_filter=$SLUICE_KERNELS_BPF_FILTER"}

#!/usr/bin/env bash
# tests/cli (test_ingressctl): ingressctl against a real pinned datapath on this kernel.
# variants: root caps
set -euo pipefail
source "$SRC/tests/kernels/lib.sh"
run_gtest "cli[$VARIANT]" "$BUILD/tests/cli/test_ingressctl" ${SLUICE_KERNELS_CLI_FILTER:+"--gtest_filter=$SLUICE_KERNELS_CLI_FILTER"}

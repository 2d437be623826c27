#!/usr/bin/env bash
# The XDP L4 fast path (issue 14) on this kernel: the PROG_TEST_RUN NAT tests (test_bpf_l4; an
# XDP test run with an ingress_ifindex needs 5.15+, so older kernels skip them and the feature
# line says so) and the three-namespace netns test with the real agent. The netns test
# exits 77 when the kernel cannot run native XDP on veth: recorded as a feature, not a failure.
# variants: root
set -euo pipefail
source "$SRC/tests/kernels/lib.sh"
release=$(uname -r)
major=${release%%.*} rest=${release#*.}
minor=${rest%%[.-]*}
if ((major < 5 || (major == 5 && minor < 15))); then
  # BPF_PROG_TEST_RUN of XDP with an ingress interface arrived in 5.15: the program tests cannot
  # run here (the fast path itself would; the agent falls back to the relay where it cannot).
  feature l4_prog_test_run "skipped: XDP test runs with ingress_ifindex need 5.15+ (kernel $release)"
  report "l4[$VARIANT]" 0 0 1 "XDP test runs with ingress_ifindex need 5.15+"
else
  run_gtest "l4[$VARIANT]" "$BUILD/tests/bpf/test_bpf_l4" ${SLUICE_KERNELS_L4_FILTER:+"--gtest_filter=$SLUICE_KERNELS_L4_FILTER"}
fi

begin_group "l4-netns[$VARIANT]"
rc=0
# Under TCG each new connection costs tens of milliseconds: half the spread sample of the host.
per=100
[[ ${SLUICE_GUEST:-} != qemu ]] || per=50
SLUICE_L4_SPREAD_PER_BACKEND=$per bash "$SRC/tests/bpf/l4_netns_test.sh" "$BUILD" >> "$LOG" 2>&1 || rc=$?
if ((rc == 77)); then
  feature l4_netns "skipped: $(grep -m1 '^skip:' "$LOG" || echo "exit 77")"
else
  check "three-namespace fast path (see log)" test "$rc" = 0
fi
group_report

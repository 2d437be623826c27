#!/usr/bin/env bash
# tests/bpf (test_bpf_xdp): the XDP front door under BPF_PROG_TEST_RUN on this kernel, every
# verdict, and (6.0+) the SYN-cookie cases against real listeners in a private network
# namespace. On 5.10 the synproxy program cannot load (no raw cookie helpers 204-207): those
# cases must skip, saying so, while every plain front-door case passes.
# Then (root only, when veth is available) tests/bpf/xdp_netns_test.sh with the real agent in
# generic XDP mode: deny list, SYN limit, ingressctl deny, restart without a gap.
# variants: root caps
set -euo pipefail
source "$SRC/tests/kernels/lib.sh"
run_gtest "xdp[$VARIANT]" "$BUILD/tests/bpf/test_bpf_xdp" ${SLUICE_KERNELS_XDP_FILTER:+"--gtest_filter=$SLUICE_KERNELS_XDP_FILTER"}

[[ $VARIANT == root ]] || exit 0
begin_group "xdp_netns[$VARIANT]"
kmod_load veth > /dev/null 2>&1 || true
if ! ip link add sluice-probe0 type veth peer name sluice-probe1 2> /dev/null; then
  report "xdp_netns[$VARIANT]" 0 0 1 "no veth on this kernel"
  exit 0
fi
ip link del sluice-probe0 2> /dev/null || true
rc=0
XDP_NETNS_MODE=generic bash "$SRC/tests/bpf/xdp_netns_test.sh" "$BUILD" > "$LOG.out" 2>&1 || rc=$?
cat "$LOG.out" >> "$LOG"
if ((rc == 77)); then
  report "xdp_netns[$VARIANT]" 0 0 1 "$(grep -m1 '^skip' "$LOG.out")"
  exit 0
fi
sed -E 's/^ok: (.*)$/ok   \1/; s/^FAIL: (.*)$/FAIL \1/' "$LOG.out" > "$LOG.lines"
check_lines "$LOG.lines"
((rc == 0)) || check "xdp_netns_test.sh exit status $rc" false
group_report

// SPDX-License-Identifier: GPL-2.0-only
/*
 * xdp_pass.bpf.c - test helper: XDP_PASS for every packet. Attached to the far ends of the veth
 * pairs in tests/bpf/l4_netns_test.sh, because a veth delivers XDP_TX'd or redirected frames
 * only when its peer runs an XDP program (kernel-datapath notes, section D).
 */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_pass(struct xdp_md* ctx) {
  return XDP_PASS;
}

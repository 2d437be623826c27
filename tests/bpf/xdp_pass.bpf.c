// SPDX-License-Identifier: GPL-2.0-only
/*
 * xdp_pass.bpf.c - passes every packet. Tests attach it (native) to the far ends of veth pairs
 * (tests/bpf/xdp_synproxy_test.sh, l4_netns_test.sh): a veth delivers frames another program
 * sends with XDP_TX or redirects only when its peer runs an XDP program (without one they are
 * counted as xdp_tx_errors and lost).
 */
#include "vmlinux.h"  // first: the helpers need its types

#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int sluice_xdp_pass(struct xdp_md* ctx) {
  return XDP_PASS;
}

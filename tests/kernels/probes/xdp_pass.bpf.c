// SPDX-License-Identifier: GPL-2.0-only
/* The smallest XDP program: does the kernel attach XDP (native, generic) to an interface? */
// vmlinux.h first: the libbpf headers use its kernel types.
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int sluice_probe_xdp(struct xdp_md* ctx) {
  return XDP_PASS;
}

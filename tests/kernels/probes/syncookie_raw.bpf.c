// SPDX-License-Identifier: GPL-2.0-only
/*
 * Does the verifier know the socket-less SYN cookie helpers (bpf_tcp_raw_gen_syncookie_ipv4 and
 * bpf_tcp_raw_check_syncookie_ipv4, helpers 204/206, Linux 6.0)? The XDP front door's opt-in SYN
 * proxy needs them; loading this program is the probe (it is never attached).
 */
// vmlinux.h first: the libbpf headers use its kernel types.
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800

SEC("xdp")
int sluice_probe_syncookie(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* end = (void*)(long)ctx->data_end;
  struct ethhdr* eth = data;
  struct iphdr* ip = (void*)(eth + 1);
  struct tcphdr* tcp = (void*)(ip + 1);
  __s64 cookie;

  if ((void*)(tcp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) ||
      ip->protocol != IPPROTO_TCP || ip->ihl != 5)
    return XDP_PASS;
  if (tcp->syn && !tcp->ack) {
    cookie = bpf_tcp_raw_gen_syncookie_ipv4(ip, tcp, sizeof(*tcp));
    return cookie < 0 ? XDP_DROP : XDP_PASS;
  }
  if (tcp->ack && bpf_tcp_raw_check_syncookie_ipv4(ip, tcp) != 0)
    return XDP_DROP;
  return XDP_PASS;
}

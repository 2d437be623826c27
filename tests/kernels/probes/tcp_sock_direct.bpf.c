// SPDX-License-Identifier: GPL-2.0-only
/*
 * The read bpf/splice.bpf.c's over_budget() does, written as a direct load through the BTF
 * pointer bpf_skc_to_tcp_sock() returns instead of BPF_CORE_READ (which compiles to the
 * bpf_probe_read_kernel helper). Loading it on each kernel, with and without CAP_PERFMON, tells
 * whether the datapath could drop the probe-read helper (refused under lockdown=confidentiality).
 */
// vmlinux.h first: the libbpf headers use its kernel types.
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, 2);
  __type(key, __u64);
  __type(value, __u64);
} probe_socks SEC(".maps");

SEC("sk_skb/stream_verdict")
int sluice_probe_direct(struct __sk_buff* skb) {
  __u64 key = bpf_get_socket_cookie(skb);
  struct bpf_sock* sk = bpf_map_lookup_elem(&probe_socks, &key);
  struct tcp_sock* tp;
  __u32 write_seq = 0;

  if (!sk)
    return SK_PASS;
  tp = bpf_skc_to_tcp_sock(sk);
  if (tp)
    write_seq = tp->write_seq;
  bpf_sk_release(sk);
  return write_seq & 1 ? SK_PASS : SK_DROP;
}

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sluice_abi.h - the one ABI shared by the BPF programs, the agent and ingressctl.
 *
 * Every struct here is the key or value of a map pinned under SLUICE_PIN_DIR, so its layout
 * outlives any single process: fields are fixed width, padding is explicit, and the C++ side
 * (userspace/bpf/abi.hpp) static_asserts sizes and offsets. A layout change gets a new map name
 * (suffix _v2, _v3...) instead of reinterpreting a pinned map; appending enum values is
 * compatible. "Layout" includes what an entry means to the other maps and the programs: v3 moved
 * the redirect target out of the verdict's sockhash (sluice_socks -> sluice_socks_v3 plus
 * sluice_targets), so a v2 agent and a v3 agent never share a sockhash whose verdict expects
 * the other's arming order.
 *
 * BPF programs include this after vmlinux.h (which provides __u32/__u64); userspace gets the
 * same types from <linux/types.h>.
 */
#ifndef SLUICE_ABI_H
#define SLUICE_ABI_H

#if defined(__bpf__)
#ifndef __VMLINUX_H__
#error "include vmlinux.h before sluice_abi.h"
#endif
#else
#include <linux/types.h>
#endif

#define SLUICE_ABI_VERSION 3

/* bpffs directory holding every pinned Sluice map (libbpf pin_root_path). */
#define SLUICE_PIN_DIR "/sys/fs/bpf/sluice"

/*
 * Map names: the BTF map symbol in the .bpf.c, the file name under the pin directory, and what
 * ingressctl opens. The kernel keeps only the first 15 characters (BPF_OBJ_NAME_LEN), so
 * `bpftool map show` prints "sluice_flow_sta" for SLUICE_MAP_FLOW_STATS; address maps by pin
 * path, never by kernel name.
 */
/* v3: the map the verdict is attached to; its redirects go to SLUICE_MAP_TARGETS */
#define SLUICE_MAP_SOCKS "sluice_socks_v3"
/* v3: the same sockets, no program: what the verdict redirects into */
#define SLUICE_MAP_TARGETS "sluice_targets"
/* v2: budget, seq_base */
#define SLUICE_MAP_PEERS "sluice_peers_v2"
#define SLUICE_MAP_FLOW_STATS "sluice_flow_stats"
#define SLUICE_MAP_VERDICTS "sluice_verdicts"

/*
 * The agent pins its verdict program here too (same directory), so ingressctl can name it with
 * nothing but file access and CAP_BPF: opening a program by id needs CAP_SYS_ADMIN, and kernels
 * before 5.19 cannot list the programs attached to a sockmap at all. Kernel name: 15 characters,
 * "sluice_splice_v".
 */
#define SLUICE_PROG_VERDICT "sluice_splice_verdict"

/* Capacity of the per-socket maps; a spliced pair uses two entries in each. */
#define SLUICE_MAX_SOCKETS 65536

/* Slots in the per-reason counter array; fixed so appending reasons keeps pinned maps usable. */
#define SLUICE_REASON_SLOTS 32

/* Key of every per-socket map: the kernel's socket cookie (SO_COOKIE, bpf_get_socket_cookie). */
struct sluice_flow_key {
	__u64 cookie;
};

/* sluice_flow.flags: which side of the proxied pair this socket is. */
#define SLUICE_FLOW_F_CLIENT (1U << 0)	 /* faces the downstream client */
#define SLUICE_FLOW_F_BACKEND (1U << 1)	 /* faces the upstream backend */
#define SLUICE_FLOW_F_SEQ_BASE (1U << 2) /* set by the verdict: seq_base holds the peer's base */
#define SLUICE_FLOW_F_HELD (1U << 3) /* set by the verdict: over budget, bytes go to userspace */

/* sluice_flow.strategy: what the verdict program does with bytes received on this socket. */
enum sluice_strategy {
	SLUICE_STRATEGY_PASS = 0, /* SK_PASS: leave bytes to userspace (zeroed entry is inert) */
	SLUICE_STRATEGY_REDIRECT = 1, /* redirect bytes to the peer socket's egress */
};

/* Value of sluice_peers: one entry per spliced socket, naming where its bytes go. */
struct sluice_flow {
	__u64 peer_cookie; /* socket cookie of the other half of the pair */
	__u64 flow_id;	   /* agent's id for the pair, the same in both entries */
	__u64 created_ns;  /* CLOCK_MONOTONIC (bpf_ktime_get_ns clock) when the pair was armed */
	__u32 flags;	   /* SLUICE_FLOW_F_* */
	__u8 strategy;	   /* enum sluice_strategy */
	__u8 pad[3];	   /* zero */
	/*
	 * Redirect budget: bytes this socket may have redirected that the peer's TCP send queue
	 * has not taken yet (they sit in the peer's psock queue, charged to no socket buffer).
	 * Past it the verdict sets SLUICE_FLOW_F_HELD and passes this and every later skb to this
	 * socket's own receive path, where socket-buffer accounting closes the TCP window and the
	 * agent relays the direction itself. 0 = unlimited.
	 */
	__u32 budget;
	__u32 seq_base; /* peer's tcp write_seq when this socket first redirected (verdict-owned) */
};

/* Value of sluice_flow_stats: counters the verdict program keeps for each socket it receives on. */
struct sluice_flow_stats {
	__u64 bytes;	    /* bytes received and redirected to the peer */
	__u64 packets;	    /* skbs redirected (after GRO/coalescing, not wire packets) */
	__u64 last_seen_ns; /* bpf_ktime_get_ns() of the last skb, redirected or passed */
	__u64 passed_bytes; /* bytes left to userspace (flow held, or the peer was gone) */
};

/*
 * Verdict outcomes, one table: enum values index sluice_verdicts and the labels are the
 * Prometheus label values and CLI strings. Append only; values must stay below
 * SLUICE_REASON_SLOTS.
 *   redirect      bytes redirected to the peer's egress
 *   no_peer       socket in sluice_socks_v3 without a sluice_peers entry: SK_PASS
 *   userspace     the entry's strategy is SLUICE_STRATEGY_PASS: SK_PASS
 *   peer_missing  the peer's cookie is not in sluice_targets (closed): SK_PASS
 *   over_budget   the peer has not taken `budget` redirected bytes: flow held, SK_PASS
 *   held          the flow was held earlier: SK_PASS (the agent relays this direction)
 *   empty         an skb without payload (a FIN): SK_PASS, so the reader sees EOF
 * SK_PASS bytes land in the socket's psock ingress queue, readable only with recv/recvmsg
 * (older kernels report FIONREAD 0 for them; splice(2) did not see them before 2025).
 */
#define SLUICE_REASON_TABLE(X)                                                                     \
	X(SLUICE_REASON_REDIRECT, 0, "redirect")                                                   \
	X(SLUICE_REASON_NO_PEER, 1, "no_peer")                                                     \
	X(SLUICE_REASON_USERSPACE, 2, "userspace")                                                 \
	X(SLUICE_REASON_PEER_MISSING, 3, "peer_missing")                                           \
	X(SLUICE_REASON_OVER_BUDGET, 4, "over_budget")                                             \
	X(SLUICE_REASON_HELD, 5, "held")                                                           \
	X(SLUICE_REASON_EMPTY, 6, "empty")

enum sluice_reason {
#define SLUICE_REASON_ENUM_(name, value, label) name = value,
	SLUICE_REASON_TABLE(SLUICE_REASON_ENUM_)
#undef SLUICE_REASON_ENUM_
		SLUICE_REASON_COUNT,
};

#ifndef __cplusplus
_Static_assert(sizeof(struct sluice_flow_key) == 8, "sluice_flow_key layout");
_Static_assert(sizeof(struct sluice_flow) == 40, "sluice_flow layout");
_Static_assert(sizeof(struct sluice_flow_stats) == 32, "sluice_flow_stats layout");
_Static_assert(SLUICE_REASON_COUNT <= SLUICE_REASON_SLOTS, "too many verdict reasons");
#endif

#endif /* SLUICE_ABI_H */

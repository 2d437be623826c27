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

/* ---- XDP front door (bpf/xdp_frontdoor.bpf.c) ------------------------------------------------
 *
 * The front door acts only on TCP packets whose (destination address, destination port) is in
 * sluice_xdp_scope: the ingress's own listeners. Everything else on the node (kubelet, SSH, DNS)
 * passes untouched, counted as out_of_scope. Addresses are network order, IPv4 in the first 4
 * bytes of a 16-byte field; ports are network order.
 */
#define SLUICE_MAP_XDP_CONFIG "sluice_xdp_cfg" /* ARRAY[1] of sluice_xdp_config */
#define SLUICE_MAP_XDP_SCOPE                                                                       \
	"sluice_xdp_scope"			/* HASH sluice_xdp_scope_key -> sluice_xdp_scope   \
						 */
#define SLUICE_MAP_XDP_DENY4 "sluice_deny4"	/* LPM sluice_xdp_deny4_key -> sluice_xdp_deny */
#define SLUICE_MAP_XDP_DENY6 "sluice_deny6"	/* LPM sluice_xdp_deny6_key -> sluice_xdp_deny */
#define SLUICE_MAP_XDP_ACL4 "sluice_acl4"	/* LPM sluice_xdp_acl4_key -> sluice_xdp_acl */
#define SLUICE_MAP_XDP_ACL6 "sluice_acl6"	/* LPM sluice_xdp_acl6_key -> sluice_xdp_acl */
#define SLUICE_MAP_XDP_RATE "sluice_xdp_rate"	/* LRU_HASH sluice_xdp_src -> sluice_xdp_bucket */
#define SLUICE_MAP_XDP_STATS "sluice_xdp_stats" /* PERCPU_ARRAY[REASON_SLOTS] of __u64 */

/* Program names (kernel keeps 15 characters: "sluice_xdp_fron", "sluice_xdp_synp"). An XDP
 * program whose kernel name starts with SLUICE_XDP_PROG_PREFIX is Sluice's to replace; any other
 * attached program is someone else's and the agent refuses to touch it. */
#define SLUICE_XDP_PROG_FRONTDOOR "sluice_xdp_frontdoor"
#define SLUICE_XDP_PROG_SYNPROXY "sluice_xdp_synproxy"
#define SLUICE_XDP_PROG_PREFIX "sluice_xdp_"

/* Capacities. */
#define SLUICE_XDP_MAX_SCOPE 1024
#define SLUICE_XDP_MAX_DENY 65536
#define SLUICE_XDP_MAX_ACL 16384
#define SLUICE_XDP_MAX_SOURCES 65536

/* IPv6 extension headers (hop-by-hop, routing, destination options) followed before TCP; a
 * longer chain passes uninspected, counted as "unparsed". */
#define SLUICE_XDP_MAX_V6_EXT 4

/* sluice_xdp_config.flags */
#define SLUICE_XDP_CFG_F_SYNCOOKIE (1U << 0) /* synproxy program: answer SYNs under pressure */
#define SLUICE_XDP_CFG_F_SYNCOOKIE_ALWAYS                                                          \
	(1U << 1) /* ...for every in-scope SYN (tests, floods)                                     \
		   */

/* Value of sluice_xdp_cfg[0]: written by the agent, read per packet. Rates are GCRA: one
 * admitted event per interval, up to `burst` at once; interval 0 = no limit. */
struct sluice_xdp_config {
	__u64 syn_interval_ns; /* per source: 1e9 / --syn-rate-per-source */
	__u64 pkt_interval_ns; /* per source: 1e9 / --packet-rate-per-source */
	__u32 syn_burst;       /* --syn-burst (>= 1) */
	__u32 pkt_burst;       /* --packet-burst (>= 1) */
	__u32 flags;	       /* SLUICE_XDP_CFG_F_* */
	__u32 pad;	       /* zero */
};

/* sluice_xdp_scope_key.family */
#define SLUICE_XDP_FAMILY_V4 4
#define SLUICE_XDP_FAMILY_V6 6

/* Key of sluice_xdp_scope. A listener on every address is the all-zero addr ("wildcard"); the
 * program looks up the exact address first, then the wildcard. */
struct sluice_xdp_scope_key {
	__u8 addr[16]; /* destination, network order */
	__u16 port;    /* destination port, network order */
	__u8 family;   /* SLUICE_XDP_FAMILY_V4 / _V6 */
	__u8 pad;      /* zero */
};

/* sluice_xdp_scope.kind: what the agent listens for on it (shown by ingressctl xdp). */
#define SLUICE_XDP_KIND_HTTP 1
#define SLUICE_XDP_KIND_HTTPS 2
#define SLUICE_XDP_KIND_TCP 3 /* a TCP route: the port identifies the service */

/* sluice_xdp_scope.flags */
#define SLUICE_XDP_SCOPE_F_ALLOWLIST (1U << 0) /* sources must match an ALLOW entry in acl4/6 */
#define SLUICE_XDP_SCOPE_F_ACL (1U << 1)       /* acl4/6 hold DENY entries for this port */

struct sluice_xdp_scope {
	__u32 kind;  /* SLUICE_XDP_KIND_* */
	__u32 flags; /* SLUICE_XDP_SCOPE_F_* */
};

/* Keys of the deny tries: prefixlen counts bits of addr. */
struct sluice_xdp_deny4_key {
	__u32 prefixlen;
	__u8 addr[4];
};
struct sluice_xdp_deny6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* sluice_xdp_deny.origin: who wrote the entry (every one is reconciled to the agent's list). */
#define SLUICE_XDP_ORIGIN_CONFIGMAP 1 /* --deny-source-ranges */
#define SLUICE_XDP_ORIGIN_CLI 2	      /* ingressctl deny add: emergency, until the next reconcile */

struct sluice_xdp_deny {
	__u32 origin; /* SLUICE_XDP_ORIGIN_* */
	__u32 pad;    /* zero */
};

/* Keys of the per-port ACL tries: the port then the source, so prefixlen = 16 + the CIDR's
 * prefix and the longest match is per port. Trailing pad is beyond every prefix used. */
struct sluice_xdp_acl4_key {
	__u32 prefixlen;
	__u16 port; /* network order */
	__u8 addr[4];
	__u8 pad[2];
};
struct sluice_xdp_acl6_key {
	__u32 prefixlen;
	__u16 port; /* network order */
	__u8 addr[16];
	__u8 pad[2];
};

#define SLUICE_XDP_ACL_ALLOW 1
#define SLUICE_XDP_ACL_DENY 2

struct sluice_xdp_acl {
	__u32 action; /* SLUICE_XDP_ACL_* */
	__u32 pad;    /* zero */
};

/* Key of sluice_xdp_rate: a source; IPv6 sources are bucketed by /64 (the rest zeroed). */
struct sluice_xdp_src {
	__u8 addr[16];
	__u8 family;
	__u8 pad[7];
};

/* Value of sluice_xdp_rate. The tat fields are GCRA theoretical arrival times (bpf_ktime_get_ns
 * clock). Updates race between CPUs (no atomics on 5.10): a source spread over n CPUs can get up
 * to n extra admissions per interval, never fewer. */
struct sluice_xdp_bucket {
	__u64 syn_tat_ns;
	__u64 pkt_tat_ns;
	__u64 syns;	 /* SYNs seen in scope */
	__u64 syn_drops; /* SYNs dropped by the SYN limit */
	__u64 pkt_drops; /* packets dropped by the packet limit */
	__u64 last_ns;	 /* last packet seen */
};

/*
 * Front-door decisions, one table: values index sluice_xdp_stats; labels are the CLI strings
 * and the `reason` label of sluice_xdp_packets_total. Append only, below SLUICE_REASON_SLOTS.
 *   out_of_scope     TCP, not to a listener in sluice_xdp_scope: XDP_PASS
 *   not_ip           neither IPv4 nor IPv6 (ARP, LLDP...): XDP_PASS
 *   not_tcp          IP but not TCP (UDP, ICMP...): XDP_PASS
 *   short            truncated L2/L3/L4 header: XDP_PASS (the kernel drops it)
 *   fragment         IPv4 or IPv6 fragment: XDP_PASS uninspected (a non-first fragment has no
 *                    port; the kernel reassembles)
 *   unparsed         more than two VLAN tags or SLUICE_XDP_MAX_V6_EXT extension headers: XDP_PASS
 *   pass             in scope and admitted: XDP_PASS
 *   denied           source in sluice_deny4/6: XDP_DROP
 *   not_allowed      the port's ACL denies the source or it is not on its allow-list: XDP_DROP
 *   syn_rate         SYN over the source's SYN budget: XDP_DROP
 *   packet_rate      packet over the source's packet budget: XDP_DROP
 *   cookie_sent      SYN answered with a raw SYN cookie: XDP_TX
 *   cookie_valid     ACK for a listener carrying a valid cookie: XDP_PASS
 *   cookie_invalid   ACK for a listener (no connection) with a bad cookie: XDP_DROP
 *   cookie_error     a cookie helper or the reply failed: XDP_PASS (the kernel answers)
 */
#define SLUICE_XDP_REASON_TABLE(X)                                                                 \
	X(SLUICE_XDP_OUT_OF_SCOPE, 0, "out_of_scope")                                              \
	X(SLUICE_XDP_NOT_IP, 1, "not_ip")                                                          \
	X(SLUICE_XDP_NOT_TCP, 2, "not_tcp")                                                        \
	X(SLUICE_XDP_SHORT, 3, "short")                                                            \
	X(SLUICE_XDP_FRAGMENT, 4, "fragment")                                                      \
	X(SLUICE_XDP_UNPARSED, 5, "unparsed")                                                      \
	X(SLUICE_XDP_PASS, 6, "pass")                                                              \
	X(SLUICE_XDP_DENIED, 7, "denied")                                                          \
	X(SLUICE_XDP_NOT_ALLOWED, 8, "not_allowed")                                                \
	X(SLUICE_XDP_SYN_RATE, 9, "syn_rate")                                                      \
	X(SLUICE_XDP_PACKET_RATE, 10, "packet_rate")                                               \
	X(SLUICE_XDP_COOKIE_SENT, 11, "cookie_sent")                                               \
	X(SLUICE_XDP_COOKIE_VALID, 12, "cookie_valid")                                             \
	X(SLUICE_XDP_COOKIE_INVALID, 13, "cookie_invalid")                                         \
	X(SLUICE_XDP_COOKIE_ERROR, 14, "cookie_error")

enum sluice_xdp_reason {
#define SLUICE_XDP_REASON_ENUM_(name, value, label) name = value,
	SLUICE_XDP_REASON_TABLE(SLUICE_XDP_REASON_ENUM_)
#undef SLUICE_XDP_REASON_ENUM_
		SLUICE_XDP_REASON_COUNT,
};

#ifndef __cplusplus
_Static_assert(sizeof(struct sluice_flow_key) == 8, "sluice_flow_key layout");
_Static_assert(sizeof(struct sluice_flow) == 40, "sluice_flow layout");
_Static_assert(sizeof(struct sluice_flow_stats) == 32, "sluice_flow_stats layout");
_Static_assert(SLUICE_REASON_COUNT <= SLUICE_REASON_SLOTS, "too many verdict reasons");
_Static_assert(sizeof(struct sluice_xdp_config) == 32, "sluice_xdp_config layout");
_Static_assert(sizeof(struct sluice_xdp_scope_key) == 20, "sluice_xdp_scope_key layout");
_Static_assert(sizeof(struct sluice_xdp_scope) == 8, "sluice_xdp_scope layout");
_Static_assert(sizeof(struct sluice_xdp_deny4_key) == 8, "sluice_xdp_deny4_key layout");
_Static_assert(sizeof(struct sluice_xdp_deny6_key) == 20, "sluice_xdp_deny6_key layout");
_Static_assert(sizeof(struct sluice_xdp_acl4_key) == 12, "sluice_xdp_acl4_key layout");
_Static_assert(sizeof(struct sluice_xdp_acl6_key) == 24, "sluice_xdp_acl6_key layout");
_Static_assert(sizeof(struct sluice_xdp_src) == 24, "sluice_xdp_src layout");
_Static_assert(sizeof(struct sluice_xdp_bucket) == 48, "sluice_xdp_bucket layout");
_Static_assert(SLUICE_XDP_REASON_COUNT <= SLUICE_REASON_SLOTS, "too many xdp reasons");
#endif

/* ---- XDP L4 fast path for TCP routes (bpf/xdp_l4.bpf.c) --------------------------------------
 *
 * The front door tail-calls sluice_xdp_l4 through slot SLUICE_XDP_CHAIN_L4 of sluice_xdp_next
 * for every packet it would pass; an empty slot (fast path off) just passes. The L4 program owns
 * everything below. IPv4 only for now: addresses are __be32 in network order, ports network order.
 *
 * Forward (client -> listener addr:port of a TCP route): the flow table (LRU, keyed by the
 * client's 5-tuple) names the backend for the flow's whole life; a SYN without an entry picks a
 * backend from the service's Maglev table, allocates a SNAT port and inserts the flow and its
 * reverse entry. The packet leaves with dst = backend and src = the node's address on the egress
 * interface (sluice_l4_snat) : SNAT port, so the reply comes back through this node.
 * Reverse (backend -> node:SNAT port): sluice_l4_rev gives the client tuple back.
 */
#define SLUICE_MAP_L4_CONFIG "sluice_l4_cfg"   /* ARRAY[1] of sluice_l4_config */
#define SLUICE_MAP_L4_SERVICES "sluice_l4_svc" /* HASH sluice_l4_svc_key -> sluice_l4_service */
#define SLUICE_MAP_L4_BACKENDS "sluice_l4_be"  /* ARRAY[MAX_BACKENDS] of sluice_l4_backend */
#define SLUICE_MAP_L4_MAGLEV "sluice_l4_ring"  /* ARRAY_OF_MAPS[MAX_SERVICES]: ARRAY[M] of __u32 */
#define SLUICE_MAP_L4_FLOWS "sluice_l4_flows"  /* LRU_HASH sluice_l4_flow_key -> sluice_l4_flow */
#define SLUICE_MAP_L4_REV "sluice_l4_rev"      /* LRU_HASH sluice_l4_flow_key -> sluice_l4_rev */
#define SLUICE_MAP_L4_SNAT "sluice_l4_snat"    /* HASH __u32 ifindex -> __be32 node address */
#define SLUICE_MAP_L4_STATS "sluice_l4_stats"  /* PERCPU_ARRAY[REASON_SLOTS] of __u64 */
/* PROG_ARRAY owned by the front door's object; slot SLUICE_XDP_CHAIN_L4 holds sluice_xdp_l4. */
#define SLUICE_MAP_XDP_CHAIN "sluice_xdp_next"
#define SLUICE_XDP_CHAIN_L4 0
#define SLUICE_XDP_CHAIN_SLOTS 4
#define SLUICE_XDP_PROG_L4 "sluice_xdp_l4"

/* Capacities. Service ids index the Maglev outer map; backend ids index sluice_l4_be. */
#define SLUICE_L4_MAX_SERVICES 1024
#define SLUICE_L4_MAX_BACKENDS 16384
#define SLUICE_L4_MAX_FLOWS 262144
/* SNAT port probes per new flow before giving up (reason snat_exhausted). */
#define SLUICE_L4_SNAT_TRIES 8

/* Value of sluice_l4_cfg[0]. */
struct sluice_l4_config {
	__u64 idle_timeout_ns;	  /* an established flow idle this long is reclaimed */
	__u64 closing_timeout_ns; /* after FIN or RST, the entry lives this much longer */
	__u16 snat_port_lo;	  /* SNAT source ports, host order, inclusive; keep them outside */
	__u16 snat_port_hi;	  /*   net.ipv4.ip_local_port_range */
	__u32 flags;		  /* SLUICE_L4_CFG_F_* */
};
#define SLUICE_L4_CFG_F_ENABLED (1U << 0)	/* off: every packet passes (the relay serves) */
#define SLUICE_L4_CFG_F_RESET_REMOVED (1U << 1) /* removed backends' flows pass (kernel RSTs) */

/* Key of sluice_l4_svc: a TCP route's listener; addr 0 = every address. */
struct sluice_l4_svc_key {
	__be32 addr;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP */
	__u8 pad;
};

/* Value of sluice_l4_svc. The Maglev table lives in sluice_l4_maglev[id]; the agent builds a
 * whole new inner array and swaps the outer slot in one update, so a lookup sees the old table
 * or the new one, never half of each. */
struct sluice_l4_service {
	__u32 id;	     /* < SLUICE_L4_MAX_SERVICES */
	__u32 flags;	     /* SLUICE_L4_SVC_F_* */
	__u32 table_size;    /* M of its table */
	__u32 backend_count; /* ready backends in the table (0: new flows fall back) */
};
#define SLUICE_L4_SVC_F_FAST (1U << 0) /* the fast path serves this service */

/* sluice_l4_backend.state:
 *   UNUSED    free slot (a zeroed entry)
 *   ACTIVE    ready and serving: in the Maglev table
 *   DRAINING  removed or terminating: keeps its flows, gets no new ones
 *   LOCAL     on this node: in the table, but the relay serves its flows (backend_local) */
#define SLUICE_L4_BACKEND_UNUSED 0
#define SLUICE_L4_BACKEND_ACTIVE 1
#define SLUICE_L4_BACKEND_DRAINING 2
#define SLUICE_L4_BACKEND_LOCAL 3

/* Value of sluice_l4_be[id]. */
struct sluice_l4_backend {
	__be32 addr;
	__be16 port;
	__u8 state; /* SLUICE_L4_BACKEND_* */
	__u8 pad;
	__u32 service_id;
	__u32 pad2;
};

/* Key of both flow maps: a TCP 5-tuple as seen on the wire (src = sender). */
struct sluice_l4_flow_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* sluice_l4_flow.flags */
#define SLUICE_L4_FLOW_F_FIN_CLIENT (1U << 0)
#define SLUICE_L4_FLOW_F_FIN_BACKEND (1U << 1)
#define SLUICE_L4_FLOW_F_RST (1U << 2)

/* Value of sluice_l4_flows: the client's flow, keyed by its 5-tuple to the listener. The backend
 * is copied in, so the flow keeps it while it lives whatever happens to the tables. */
struct sluice_l4_flow {
	__be32 backend_addr;
	__be16 backend_port;
	__be16 snat_port;
	__be32 snat_addr;
	__u32 backend_id;
	__u32 service_id;
	__u32 flags;	  /* SLUICE_L4_FLOW_F_* */
	__u64 created_ns; /* bpf_ktime_get_ns */
	__u64 last_ns;	  /* last packet either way */
	__u64 packets_in; /* client -> backend */
	__u64 bytes_in;
	__u64 packets_out; /* backend -> client (updated by the reverse path) */
	__u64 bytes_out;
};

/* Value of sluice_l4_rev, keyed by the reply's 5-tuple (backend -> snat addr:port). */
struct sluice_l4_rev {
	struct sluice_l4_flow_key client; /* the forward key: client -> listener */
};

/*
 * L4 fast-path decisions, one table: values index sluice_l4_stats; labels are the CLI strings
 * and the `reason` label of sluice_l4_packets_total. Append only, below SLUICE_REASON_SLOTS.
 *   not_ours         not IPv4 TCP/ICMP to a TCP route or a SNAT port: XDP_PASS
 *   disabled         fast path off in sluice_l4_cfg: XDP_PASS
 *   forward          client packet NATed to its backend: XDP_TX / redirect
 *   reverse          backend reply NATed back to the client: XDP_TX / redirect
 *   new_flow         a SYN got a backend and a flow entry (also counted as forward)
 *   no_flow          non-SYN packet of no known flow: XDP_PASS (the relay or the kernel answers)
 *   no_backend       the service has no ready backend: XDP_PASS (the relay serves)
 *   backend_local    the backend is on this node: XDP_PASS (the relay serves)
 *   no_fib           bpf_fib_lookup found no route or neighbour: XDP_PASS
 *   no_snat_addr     no node address for the egress interface: XDP_PASS
 *   snat_exhausted   no free SNAT port after SLUICE_L4_SNAT_TRIES probes: XDP_PASS
 *   ipv6             IPv6 to a fast-path port: not supported yet, XDP_PASS
 *   fragment         IPv4 fragment: XDP_PASS
 *   ip_options       IPv4 header with options: XDP_PASS
 *   icmp_translated  an ICMP error from the backend side about a flow, NATed for its client
 *   icmp_to_backend  an ICMP error from the client side about a flow, NATed for its backend
 *   closed           FIN/RST seen: the entry expires after closing_timeout
 *   reset_removed    flow of a removed backend under --l4-removed-backend=reset: entry deleted,
 *                    XDP_PASS (the kernel RSTs the client)
 *   redirect_error   bpf_redirect refused: XDP_ABORTED
 *   idle             flow older than idle_timeout: treated as new (SYN) or no_flow
 */
#define SLUICE_L4_REASON_TABLE(X)                                                                  \
	X(SLUICE_L4_NOT_OURS, 0, "not_ours")                                                       \
	X(SLUICE_L4_DISABLED, 1, "disabled")                                                       \
	X(SLUICE_L4_FORWARD, 2, "forward")                                                         \
	X(SLUICE_L4_REVERSE, 3, "reverse")                                                         \
	X(SLUICE_L4_NEW_FLOW, 4, "new_flow")                                                       \
	X(SLUICE_L4_NO_FLOW, 5, "no_flow")                                                         \
	X(SLUICE_L4_NO_BACKEND, 6, "no_backend")                                                   \
	X(SLUICE_L4_BACKEND_LOCAL_R, 7, "backend_local")                                           \
	X(SLUICE_L4_NO_FIB, 8, "no_fib")                                                           \
	X(SLUICE_L4_NO_SNAT_ADDR, 9, "no_snat_addr")                                               \
	X(SLUICE_L4_SNAT_EXHAUSTED, 10, "snat_exhausted")                                          \
	X(SLUICE_L4_IPV6, 11, "ipv6")                                                              \
	X(SLUICE_L4_FRAGMENT, 12, "fragment")                                                      \
	X(SLUICE_L4_IP_OPTIONS, 13, "ip_options")                                                  \
	X(SLUICE_L4_ICMP_TRANSLATED, 14, "icmp_translated")                                        \
	X(SLUICE_L4_CLOSED, 15, "closed")                                                          \
	X(SLUICE_L4_RESET_REMOVED, 16, "reset_removed")                                            \
	X(SLUICE_L4_REDIRECT_ERROR, 17, "redirect_error")                                          \
	X(SLUICE_L4_IDLE, 18, "idle")                                                              \
	X(SLUICE_L4_ICMP_TO_BACKEND, 19, "icmp_to_backend")

enum sluice_l4_reason {
#define SLUICE_L4_REASON_ENUM_(name, value, label) name = value,
	SLUICE_L4_REASON_TABLE(SLUICE_L4_REASON_ENUM_)
#undef SLUICE_L4_REASON_ENUM_
		SLUICE_L4_REASON_COUNT,
};

#ifndef __cplusplus
_Static_assert(sizeof(struct sluice_l4_config) == 24, "sluice_l4_config layout");
_Static_assert(sizeof(struct sluice_l4_svc_key) == 8, "sluice_l4_svc_key layout");
_Static_assert(sizeof(struct sluice_l4_service) == 16, "sluice_l4_service layout");
_Static_assert(sizeof(struct sluice_l4_backend) == 16, "sluice_l4_backend layout");
_Static_assert(sizeof(struct sluice_l4_flow_key) == 16, "sluice_l4_flow_key layout");
_Static_assert(sizeof(struct sluice_l4_flow) == 72, "sluice_l4_flow layout");
_Static_assert(sizeof(struct sluice_l4_rev) == 16, "sluice_l4_rev layout");
_Static_assert(SLUICE_L4_REASON_COUNT <= SLUICE_REASON_SLOTS, "too many l4 reasons");
#endif

#endif /* SLUICE_ABI_H */

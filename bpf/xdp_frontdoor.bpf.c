// SPDX-License-Identifier: GPL-2.0-only
/*
 * xdp_frontdoor.bpf.c - the ingress's XDP front door: deny lists, per-port allow-lists and
 * per-source rate limits, applied before the kernel allocates anything for a packet.
 *
 * Scope. Only TCP packets whose destination (address, port) is in sluice_xdp_scope are judged:
 * the agent lists its own listeners there (an exact address, or the all-zero wildcard for a
 * listener on every address). Everything else on the node passes untouched, counted once.
 *
 * Order of the checks for a packet in scope (first match decides):
 *   1. source in sluice_deny4/6 (the ConfigMap list, plus ingressctl's emergency entries): drop;
 *   2. the port's ACL (sluice_acl4/6, keyed port then source; only for scope entries flagged
 *      ALLOWLIST or ACL, i.e. TCP routes where the port identifies the service): a DENY match,
 *      or no ALLOW match on an allow-listed port, drops;
 *   3. a SYN (SYN without ACK) spends a token of the source's SYN bucket (GCRA in an LRU hash;
 *      IPv6 sources share a bucket per /64);
 *   4. every packet spends a token of the source's packet bucket, when that limit is set;
 *   5. pass.
 *
 * Parsing. Ethernet with up to two VLAN tags (802.1Q/802.1ad; a third passes as "unparsed"),
 * IPv4 with options (IHL honoured), IPv6 with up to SLUICE_XDP_MAX_V6_EXT hop-by-hop, routing or
 * destination-options headers. Fragments of either family pass uninspected and are counted:
 * a non-first fragment has no port to scope by, and dropping first fragments alone would only
 * leave the kernel holding the rest until its reassembly timeout. Truncated headers pass
 * ("short"): the kernel drops those itself and counts them where operators already look.
 *
 * The synproxy program (a separate entry point of the same object, loaded only on kernels whose
 * verifier offers the raw SYN-cookie helpers, 6.0+; the agent turns off its autoload elsewhere,
 * so this object still loads on 5.10) adds, for in-scope SYNs that passed every check, a SYN-ACK
 * carrying a raw SYN cookie sent back with XDP_TX when the listener's SYN queue is full, and on
 * ACKs that reach a listener (no connection or request socket) a cookie check: an invalid cookie
 * drops, a valid one passes to the kernel, whose own cookie check (same secret) creates the
 * connection. The kernel accepts a cookie ACK only within two minutes of the listener's last
 * SYN-queue overflow (tcp_synq_no_recent_overflow), so cookies are sent only while that stamp is
 * recent; otherwise the SYN passes and the kernel answers it (and refreshes the stamp when full).
 * Cookies carry the MSS only: such connections have no window scaling, SACK or timestamps, as
 * with the kernel's own cookies when the client sends no timestamps.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sluice_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define IP_MF_ 0x2000
#define IP_OFFSET_ 0x1FFF
#define NEXTHDR_HOP 0
#define NEXTHDR_TCP 6
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60
#define TCP_LISTEN_STATE 10
/* Cookies are sent only this many jiffies after the listener's last overflow: 100 s at the
 * lowest HZ (100), under the kernel's two-minute TCP_SYNCOOKIE_VALID at every HZ up to 1000. */
#define COOKIE_STAMP_WINDOW 10000

/* The agent's settings (rates, flags); one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_xdp_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_xdp_cfg SEC(".maps");

/* The ingress's listeners: what the front door judges. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_XDP_MAX_SCOPE);
	__type(key, struct sluice_xdp_scope_key);
	__type(value, struct sluice_xdp_scope);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_xdp_scope SEC(".maps");

/* Denied IPv4 sources (ConfigMap and emergency entries). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_XDP_MAX_DENY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_xdp_deny4_key);
	__type(value, struct sluice_xdp_deny);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_deny4 SEC(".maps");

/* Denied IPv6 sources. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_XDP_MAX_DENY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_xdp_deny6_key);
	__type(value, struct sluice_xdp_deny);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_deny6 SEC(".maps");

/* Per-port IPv4 allow/deny entries (TCP routes). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_XDP_MAX_ACL);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_xdp_acl4_key);
	__type(value, struct sluice_xdp_acl);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_acl4 SEC(".maps");

/* Per-port IPv6 allow/deny entries. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_XDP_MAX_ACL);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_xdp_acl6_key);
	__type(value, struct sluice_xdp_acl);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_acl6 SEC(".maps");

/* Per-source buckets; LRU so a spoofed flood evicts old sources instead of failing inserts. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_XDP_MAX_SOURCES);
	__type(key, struct sluice_xdp_src);
	__type(value, struct sluice_xdp_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_xdp_rate SEC(".maps");

/* Decisions by enum sluice_xdp_reason, summed over CPUs for metrics. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_REASON_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_xdp_stats SEC(".maps");

/* Programs that see what the front door passes: slot SLUICE_XDP_CHAIN_L4 holds the L4 fast
 * path (bpf/xdp_l4.bpf.c) when it is on. An empty slot makes the tail call a no-op. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SLUICE_XDP_CHAIN_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_xdp_next SEC(".maps");

struct vlan_hdr_ {
	__be16 tci;
	__be16 proto;
};

struct ipv6_ext_ {
	__u8 nexthdr;
	__u8 hdrlen;
};

/* A parsed packet: where its headers are and who sent it where. */
struct pkt {
	void *data_end;
	struct ethhdr *eth;
	struct iphdr *ip4;   /* set for IPv4 */
	struct ipv6hdr *ip6; /* set for IPv6 */
	struct tcphdr *tcp;
	__u32 l3_off;
	__u32 tcp_len;
	__u8 family;
	__u8 src[16];
	__u8 dst[16];
};

static __always_inline int count(__u32 reason, int action)
{
	__u64 *n = bpf_map_lookup_elem(&sluice_xdp_stats, &reason);

	if (n)
		*n += 1; /* per-CPU and XDP runs in softirq only: no other writer on this CPU */
	return action;
}

/* parse_l2's answers besides an ethertype: outside the 16-bit range, so that a frame whose type
 * field reads 0 or 1 (802.3 lengths, not ethertypes) is counted as not IP, not as short. */
#define L2_SHORT -1
#define L2_TAGGED -2

/* Ethernet and up to two VLAN tags; returns the L3 protocol (host order), L2_SHORT, or
 * L2_TAGGED when a third tag follows. */
static __always_inline int parse_l2(void *data, void *data_end, __u32 *off)
{
	struct ethhdr *eth = data;
	struct vlan_hdr_ *vlan;
	__u16 proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return L2_SHORT;
	proto = bpf_ntohs(eth->h_proto);
	*off = sizeof(*eth);
#pragma unroll
	for (i = 0; i < 2; i++) {
		if (proto != ETH_P_8021Q_ && proto != ETH_P_8021AD_)
			return proto;
		vlan = data + *off;
		if ((void *)(vlan + 1) > data_end)
			return L2_SHORT;
		proto = bpf_ntohs(vlan->proto);
		*off += sizeof(*vlan);
	}
	if (proto == ETH_P_8021Q_ || proto == ETH_P_8021AD_)
		return L2_TAGGED;
	return proto;
}

/* IPv4 at p->l3_off: fills p or returns the reason to pass it with. */
static __always_inline int parse_ipv4(void *data, struct pkt *p)
{
	struct iphdr *ip = data + p->l3_off;
	__u32 ihl;

	if ((void *)(ip + 1) > p->data_end)
		return SLUICE_XDP_SHORT;
	ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return SLUICE_XDP_SHORT;
	if (ip->frag_off & bpf_htons(IP_MF_ | IP_OFFSET_))
		return SLUICE_XDP_FRAGMENT;
	if (ip->protocol != IPPROTO_TCP)
		return SLUICE_XDP_NOT_TCP;
	p->tcp = (void *)ip + ihl;
	p->ip4 = ip;
	p->family = SLUICE_XDP_FAMILY_V4;
	__builtin_memcpy(p->src, &ip->saddr, 4);
	__builtin_memcpy(p->dst, &ip->daddr, 4);
	return -1;
}

/* IPv6 at p->l3_off, following up to SLUICE_XDP_MAX_V6_EXT extension headers. */
static __always_inline int parse_ipv6(void *data, struct pkt *p)
{
	struct ipv6hdr *ip6 = data + p->l3_off;
	struct ipv6_ext_ *ext;
	__u32 off;
	__u8 next;
	int i;

	if ((void *)(ip6 + 1) > p->data_end)
		return SLUICE_XDP_SHORT;
	next = ip6->nexthdr;
	off = p->l3_off + sizeof(*ip6);
#pragma unroll
	for (i = 0; i < SLUICE_XDP_MAX_V6_EXT; i++) {
		if (next != NEXTHDR_HOP && next != NEXTHDR_ROUTING && next != NEXTHDR_DEST)
			break;
		ext = data + off;
		if ((void *)(ext + 1) > p->data_end)
			return SLUICE_XDP_SHORT;
		next = ext->nexthdr;
		off += (ext->hdrlen + 1) * 8;
	}
	if (next == NEXTHDR_FRAGMENT)
		return SLUICE_XDP_FRAGMENT;
	if (next == NEXTHDR_HOP || next == NEXTHDR_ROUTING || next == NEXTHDR_DEST)
		return SLUICE_XDP_UNPARSED;
	if (next != NEXTHDR_TCP)
		return SLUICE_XDP_NOT_TCP;
	p->tcp = data + off;
	p->ip6 = ip6;
	p->family = SLUICE_XDP_FAMILY_V6;
	__builtin_memcpy(p->src, &ip6->saddr, 16);
	__builtin_memcpy(p->dst, &ip6->daddr, 16);
	return -1;
}

/* Fills p from ctx; returns -1 for a TCP packet with a whole TCP header, else the reason. */
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	int proto, reason;

	p->data_end = (void *)(long)ctx->data_end;
	p->eth = data;
	proto = parse_l2(data, p->data_end, &p->l3_off);
	if (proto == L2_SHORT)
		return SLUICE_XDP_SHORT;
	if (proto == L2_TAGGED)
		return SLUICE_XDP_UNPARSED;
	if (proto == ETH_P_IP_)
		reason = parse_ipv4(data, p);
	else if (proto == ETH_P_IPV6_)
		reason = parse_ipv6(data, p);
	else
		return SLUICE_XDP_NOT_IP;
	if (reason >= 0)
		return reason;
	if ((void *)(p->tcp + 1) > p->data_end)
		return SLUICE_XDP_SHORT;
	p->tcp_len = p->tcp->doff * 4;
	if (p->tcp_len < sizeof(struct tcphdr))
		return SLUICE_XDP_SHORT;
	return -1;
}

static __always_inline struct sluice_xdp_scope *scope_of(struct pkt *p)
{
	struct sluice_xdp_scope_key key = {};
	struct sluice_xdp_scope *scope;

	__builtin_memcpy(key.addr, p->dst, 16);
	key.port = p->tcp->dest;
	key.family = p->family;
	scope = bpf_map_lookup_elem(&sluice_xdp_scope, &key);
	if (scope)
		return scope;
	__builtin_memset(key.addr, 0, 16);
	return bpf_map_lookup_elem(&sluice_xdp_scope, &key);
}

static __always_inline bool denied(struct pkt *p)
{
	if (p->family == SLUICE_XDP_FAMILY_V4) {
		struct sluice_xdp_deny4_key k = {.prefixlen = 32};

		__builtin_memcpy(k.addr, p->src, 4);
		return bpf_map_lookup_elem(&sluice_deny4, &k) != NULL;
	}
	struct sluice_xdp_deny6_key k = {.prefixlen = 128};

	__builtin_memcpy(k.addr, p->src, 16);
	return bpf_map_lookup_elem(&sluice_deny6, &k) != NULL;
}

/* The port's ACL: true when the source may not reach it. */
static __always_inline bool acl_refuses(struct pkt *p, const struct sluice_xdp_scope *scope)
{
	struct sluice_xdp_acl *acl;

	if (!(scope->flags & (SLUICE_XDP_SCOPE_F_ALLOWLIST | SLUICE_XDP_SCOPE_F_ACL)))
		return false;
	if (p->family == SLUICE_XDP_FAMILY_V4) {
		struct sluice_xdp_acl4_key k = {.prefixlen = 16 + 32, .port = p->tcp->dest};

		__builtin_memcpy(k.addr, p->src, 4);
		acl = bpf_map_lookup_elem(&sluice_acl4, &k);
	} else {
		struct sluice_xdp_acl6_key k = {.prefixlen = 16 + 128, .port = p->tcp->dest};

		__builtin_memcpy(k.addr, p->src, 16);
		acl = bpf_map_lookup_elem(&sluice_acl6, &k);
	}
	if (acl)
		return acl->action != SLUICE_XDP_ACL_ALLOW;
	return scope->flags & SLUICE_XDP_SCOPE_F_ALLOWLIST;
}

/* GCRA: admits one event per interval, `burst` at once; updates *tat only when admitting. */
static __always_inline bool admit(__u64 *tat, __u64 now, __u64 interval, __u32 burst)
{
	__u64 t = *tat > now ? *tat : now;

	if (interval == 0)
		return true;
	if (t - now > (__u64)(burst ? burst - 1 : 0) * interval)
		return false;
	*tat = t + interval;
	return true;
}

static __always_inline struct sluice_xdp_bucket *bucket_of(struct pkt *p)
{
	struct sluice_xdp_src key = {.family = p->family};
	struct sluice_xdp_bucket *b;

	/* IPv6: one bucket per /64, the smallest prefix a host is commonly given. */
	if (p->family == SLUICE_XDP_FAMILY_V4)
		__builtin_memcpy(key.addr, p->src, 4);
	else
		__builtin_memcpy(key.addr, p->src, 8);
	b = bpf_map_lookup_elem(&sluice_xdp_rate, &key);
	if (b)
		return b;
	struct sluice_xdp_bucket fresh = {};

	bpf_map_update_elem(&sluice_xdp_rate, &key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&sluice_xdp_rate, &key);
}

/* Steps 3 and 4: the source's SYN and packet budgets. Returns a drop reason or -1. */
static __always_inline int rate_limit(struct pkt *p, const struct sluice_xdp_config *cfg, bool syn)
{
	struct sluice_xdp_bucket *b;
	__u64 now;

	if (!syn && cfg->pkt_interval_ns == 0)
		return -1;
	b = bucket_of(p);
	if (!b)
		return -1; /* the LRU could not make room: fail open */
	now = bpf_ktime_get_ns();
	b->last_ns = now;
	if (syn) {
		b->syns++;
		if (!admit(&b->syn_tat_ns, now, cfg->syn_interval_ns, cfg->syn_burst)) {
			b->syn_drops++;
			return SLUICE_XDP_SYN_RATE;
		}
	}
	if (!admit(&b->pkt_tat_ns, now, cfg->pkt_interval_ns, cfg->pkt_burst)) {
		b->pkt_drops++;
		return SLUICE_XDP_PACKET_RATE;
	}
	return -1;
}

/* Steps 1-4 for a parsed in-scope packet: a drop reason, or -1 to go on. */
static __always_inline int judge(struct pkt *p, const struct sluice_xdp_scope *scope,
				 const struct sluice_xdp_config *cfg)
{
	if (denied(p))
		return SLUICE_XDP_DENIED;
	if (acl_refuses(p, scope))
		return SLUICE_XDP_NOT_ALLOWED;
	return rate_limit(p, cfg, p->tcp->syn && !p->tcp->ack);
}

#include "lib/xdp_syncookie.h"

/* The whole front door; `cookies` is a constant, so each program gets its own copy. */
static __always_inline int frontdoor(struct xdp_md *ctx, const bool cookies)
{
	struct sluice_xdp_scope *scope;
	struct sluice_xdp_config *cfg;
	struct pkt p = {};
	__u32 zero = 0;
	int reason;

	reason = parse(ctx, &p);
	if (reason >= 0)
		return count(reason, XDP_PASS);
	scope = scope_of(&p);
	if (!scope)
		return count(SLUICE_XDP_OUT_OF_SCOPE, XDP_PASS);
	cfg = bpf_map_lookup_elem(&sluice_xdp_cfg, &zero);
	if (!cfg)
		return count(SLUICE_XDP_PASS, XDP_PASS);
	reason = judge(&p, scope, cfg);
	if (reason >= 0)
		return count(reason, XDP_DROP);
	if (cookies) {
		reason = syncookie(ctx, &p, cfg);
		if (reason == SLUICE_XDP_COOKIE_SENT)
			return count(reason, XDP_TX);
		if (reason == SLUICE_XDP_COOKIE_INVALID)
			return count(reason, XDP_DROP);
		if (reason >= 0)
			return count(reason, XDP_PASS);
	}
	return count(SLUICE_XDP_PASS, XDP_PASS);
}

/* A passed packet goes on to the L4 fast path when its slot is filled; the tail call returns
 * only when the slot is empty, and then the packet passes as decided. */
static __always_inline int chain(struct xdp_md *ctx, int action)
{
	if (action == XDP_PASS)
		bpf_tail_call(ctx, &sluice_xdp_next, SLUICE_XDP_CHAIN_L4);
	return action;
}

/* Deny lists, ACLs and rate limits: loads on every supported kernel (5.10+). */
SEC("xdp")
int sluice_xdp_frontdoor(struct xdp_md *ctx)
{
	return chain(ctx, frontdoor(ctx, false));
}

/* The same plus raw SYN cookies (6.0+; --xdp-syn-proxy). */
SEC("xdp")
int sluice_xdp_synproxy(struct xdp_md *ctx)
{
	return chain(ctx, frontdoor(ctx, true));
}

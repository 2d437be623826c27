// SPDX-License-Identifier: GPL-2.0-only
/*
 * xdp_l4.bpf.c - the XDP L4 fast path for TCP routes: Maglev choice, DNAT to the backend plus
 * SNAT to the node, forwarded out of the right interface without the kernel's stack.
 *
 * Entry. The front door (xdp_frontdoor.bpf.c) judges every packet first (deny lists, ACLs, rate
 * limits) and tail-calls this program through sluice_xdp_next for each packet it would pass.
 * The program can also be attached or test-run on its own.
 *
 * Forward, client -> listener of a TCP route (sluice_l4_svc, exact address then wildcard):
 *   - a known flow (sluice_l4_flows, keyed by the client's 5-tuple) keeps its backend, whatever
 *     the Maglev table says now: the flow table wins;
 *   - a SYN without one hashes its 5-tuple into the service's Maglev table (sluice_l4_ring[id]),
 *     asks the FIB for the backend's next hop, takes the node's address on that interface
 *     (sluice_l4_snat) and a free SNAT port (probing sluice_l4_rev with BPF_NOEXIST), and
 *     inserts the flow and its reverse entry;
 *   - any other packet without a flow passes: the kernel or the agent's relay owns it.
 * Reverse, backend -> node:SNAT port: sluice_l4_rev names the client flow; addresses and ports
 * are swapped back. ICMP errors (destination unreachable, fragmentation needed included; time
 * exceeded) about a packet of a flow are translated for the other side, in both directions.
 *
 * Both directions: incremental checksum updates (RFC 1624) of the IPv4 header and the TCP
 * pseudo-header and ports, TTL decremented like a router, bpf_fib_lookup from the receiving
 * interface (so the node must forward: net.ipv4.conf.<if>.forwarding=1), then XDP_TX when the
 * next hop is behind the receiving interface and bpf_redirect otherwise. A packet the fast path
 * cannot serve (no route or neighbour, no node address, no SNAT port, IPv6, IP options) passes
 * to the kernel with its reason counted; a SYN that passes goes to the agent's relay.
 *
 * Lifetimes: FIN from both sides or an RST marks a flow closing; closing flows expire
 * closing_timeout after their last packet, others idle_timeout after it (checked on lookup; the
 * LRU evicts the rest and the agent sweeps). A SYN on an expired or closing flow starts a new one.
 * A backend the agent cleared (state UNUSED, or a different backend in its slot) under
 * --l4-removed-backend=reset loses its flows on their next packet, which then passes and gets
 * the kernel's RST; otherwise flows drain.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sluice_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define IP_MF_ 0x2000
#define IP_OFFSET_ 0x1FFF
#define AF_INET_ 2
#define ICMP_DEST_UNREACH_ 3
#define ICMP_TIME_EXCEEDED_ 11

/* The agent's settings; one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_l4_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_l4_cfg SEC(".maps");

/* TCP routes served by the fast path: listener -> service. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_L4_MAX_SERVICES);
	__type(key, struct sluice_l4_svc_key);
	__type(value, struct sluice_l4_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_l4_svc SEC(".maps");

/* Backends by id (what Maglev slots hold). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_L4_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct sluice_l4_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_l4_be SEC(".maps");

/* One Maglev table per service. BPF_F_INNER_MAP lets the agent size tables (--maglev-table-size)
 * without the template's max_entries; lookups are then bounds-checked at run time. */
struct maglev_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16381);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u32);
};

/* Service id -> its current Maglev table; replaced whole, in one update. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, SLUICE_L4_MAX_SERVICES);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct maglev_table);
} sluice_l4_ring SEC(".maps");

/* Client flows: 5-tuple -> backend, SNAT port, times and counters. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_L4_MAX_FLOWS);
	__type(key, struct sluice_l4_flow_key);
	__type(value, struct sluice_l4_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_l4_flows SEC(".maps");

/* Reply 5-tuple (backend -> node:SNAT port) -> the client flow's key. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_L4_MAX_FLOWS);
	__type(key, struct sluice_l4_flow_key);
	__type(value, struct sluice_l4_rev);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_l4_rev SEC(".maps");

/* Egress ifindex -> the node's IPv4 address there (SNAT source). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __be32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_l4_snat SEC(".maps");

/* Decisions by enum sluice_l4_reason, summed over CPUs for metrics. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_REASON_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_l4_stats SEC(".maps");

static __always_inline int count(__u32 reason, int action)
{
	__u64 *n = bpf_map_lookup_elem(&sluice_l4_stats, &reason);

	if (n)
		*n += 1; /* per-CPU, softirq only: no other writer on this CPU */
	return action;
}

/* ---- checksums (RFC 1624: HC' = ~(~HC + ~m + m')) ---------------------------------------- */

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Values are raw memory words: one's-complement sums do not care about byte order as long as
 * every word is read the same way. */
static __always_inline void csum_replace2(__u16 *check, __u16 old, __u16 new)
{
	__u32 sum = (__u16) ~*check;

	sum += (__u16)~old;
	sum += new;
	*check = csum_fold(sum);
}

static __always_inline void csum_replace4(__u16 *check, __u32 old, __u32 new)
{
	csum_replace2(check, old & 0xffff, new & 0xffff);
	csum_replace2(check, old >> 16, new >> 16);
}

/* Rewrites an IPv4 header's addresses and a TCP header's ports, fixing both checksums. */
static __always_inline void nat4(struct iphdr *ip, struct tcphdr *tcp, __be32 saddr, __be32 daddr,
				 __be16 sport, __be16 dport)
{
	csum_replace4(&ip->check, ip->saddr, saddr);
	csum_replace4(&ip->check, ip->daddr, daddr);
	csum_replace4(&tcp->check, ip->saddr, saddr);
	csum_replace4(&tcp->check, ip->daddr, daddr);
	csum_replace2(&tcp->check, tcp->source, sport);
	csum_replace2(&tcp->check, tcp->dest, dport);
	ip->saddr = saddr;
	ip->daddr = daddr;
	tcp->source = sport;
	tcp->dest = dport;
}

/* ---- parsing ------------------------------------------------------------------------------ */

struct pkt {
	void *data_end;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct tcphdr *tcp;   /* TCP packets */
	struct icmphdr *icmp; /* ICMP packets */
	struct sluice_l4_flow_key key;
};

/* -1 for IPv4 TCP or ICMP with whole headers (p filled), else a reason to pass with. */
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct iphdr *ip;

	p->data_end = (void *)(long)ctx->data_end;
	if ((void *)(eth + 1) > p->data_end)
		return SLUICE_L4_NOT_OURS;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6_)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct tcphdr *t = (void *)(ip6 + 1);
		struct sluice_l4_svc_key k = {.proto = IPPROTO_TCP};

		/* Counted only when a wildcard TCP route listens on the port: IPv6 clients of a
		 * fast-path service are served by the relay until the fast path learns IPv6. */
		if ((void *)(t + 1) > p->data_end || ip6->nexthdr != IPPROTO_TCP)
			return SLUICE_L4_NOT_OURS;
		k.port = t->dest;
		return bpf_map_lookup_elem(&sluice_l4_svc, &k) ? SLUICE_L4_IPV6
							       : SLUICE_L4_NOT_OURS;
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP_))
		return SLUICE_L4_NOT_OURS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > p->data_end)
		return SLUICE_L4_NOT_OURS;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_ICMP)
		return SLUICE_L4_NOT_OURS;
	if (ip->frag_off & bpf_htons(IP_MF_ | IP_OFFSET_))
		return SLUICE_L4_FRAGMENT;
	if (ip->ihl != 5)
		return SLUICE_L4_IP_OPTIONS;
	p->eth = eth;
	p->ip = ip;
	p->key.saddr = ip->saddr;
	p->key.daddr = ip->daddr;
	p->key.proto = ip->protocol;
	if (ip->protocol == IPPROTO_ICMP) {
		p->icmp = (void *)(ip + 1);
		if ((void *)(p->icmp + 1) > p->data_end)
			return SLUICE_L4_NOT_OURS;
		return -1;
	}
	p->tcp = (void *)(ip + 1);
	if ((void *)(p->tcp + 1) > p->data_end)
		return SLUICE_L4_NOT_OURS;
	p->key.sport = p->tcp->source;
	p->key.dport = p->tcp->dest;
	return -1;
}

/* ---- forwarding --------------------------------------------------------------------------- */

/* FIB lookup for the packet as it is now (after NAT); fills MACs and returns the egress ifindex
 * in *oif. */
static __always_inline int fib(struct xdp_md *ctx, struct iphdr *ip, __u32 *oif,
			       struct bpf_fib_lookup *f)
{
	long rc;

	/* A router must not forward what would leave with TTL 0; the kernel answers it instead. */
	if (ip->ttl <= 1)
		return -1;
	__builtin_memset(f, 0, sizeof(*f));
	f->family = AF_INET_;
	f->l4_protocol = ip->protocol;
	f->tos = ip->tos;
	f->tot_len = bpf_ntohs(ip->tot_len);
	f->ifindex = ctx->ingress_ifindex;
	f->ipv4_src = ip->saddr;
	f->ipv4_dst = ip->daddr;
	rc = bpf_fib_lookup(ctx, f, sizeof(*f), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	*oif = f->ifindex;
	return 0;
}

/* Router duties and the send: TTL, MACs, XDP_TX or redirect. */
static __always_inline int send(struct xdp_md *ctx, struct pkt *p, struct bpf_fib_lookup *f,
				__u32 oif, __u32 reason)
{
	__u16 old = *(__u16 *)&p->ip->ttl;

	p->ip->ttl--;
	csum_replace2(&p->ip->check, old, *(__u16 *)&p->ip->ttl);
	__builtin_memcpy(p->eth->h_dest, f->dmac, 6);
	__builtin_memcpy(p->eth->h_source, f->smac, 6);
	if (oif == ctx->ingress_ifindex)
		return count(reason, XDP_TX);
	if (bpf_redirect(oif, 0) != XDP_REDIRECT)
		return count(SLUICE_L4_REDIRECT_ERROR, XDP_ABORTED);
	return count(reason, XDP_REDIRECT);
}

static __always_inline bool expired(const struct sluice_l4_flow *f,
				    const struct sluice_l4_config *cfg, __u64 now)
{
	bool closing =
		(f->flags & SLUICE_L4_FLOW_F_RST) || ((f->flags & SLUICE_L4_FLOW_F_FIN_CLIENT) &&
						      (f->flags & SLUICE_L4_FLOW_F_FIN_BACKEND));
	__u64 limit = closing ? cfg->closing_timeout_ns : cfg->idle_timeout_ns;

	/* The other direction, on another CPU, may have stamped last_ns after this CPU read `now`:
	 * an unsigned difference would wrap and call a busy flow expired. */
	if (f->last_ns >= now)
		return false;
	return now - f->last_ns > limit;
}

static __always_inline void forget(const struct sluice_l4_flow_key *client,
				   const struct sluice_l4_flow *f)
{
	struct sluice_l4_flow_key rk = {
		.saddr = f->backend_addr,
		.daddr = f->snat_addr,
		.sport = f->backend_port,
		.dport = f->snat_port,
		.proto = IPPROTO_TCP,
	};

	bpf_map_delete_elem(&sluice_l4_rev, &rk);
	bpf_map_delete_elem(&sluice_l4_flows, client);
}

/* Updates a flow's counters and FIN/RST state with one packet. */
static __always_inline void account(struct sluice_l4_flow *f, struct pkt *p, bool from_client,
				    __u64 now)
{
	__u64 len = (void *)p->data_end - (void *)p->ip;

	f->last_ns = now;
	if (from_client) {
		f->packets_in++;
		f->bytes_in += len;
	} else {
		f->packets_out++;
		f->bytes_out += len;
	}
	if (p->tcp->rst)
		f->flags |= SLUICE_L4_FLOW_F_RST;
	if (p->tcp->fin)
		f->flags |=
			from_client ? SLUICE_L4_FLOW_F_FIN_CLIENT : SLUICE_L4_FLOW_F_FIN_BACKEND;
}

static __always_inline struct sluice_l4_service *service_of(struct pkt *p)
{
	struct sluice_l4_svc_key k = {
		.addr = p->key.daddr, .port = p->key.dport, .proto = IPPROTO_TCP};
	struct sluice_l4_service *svc = bpf_map_lookup_elem(&sluice_l4_svc, &k);

	if (svc)
		return svc;
	k.addr = 0;
	return bpf_map_lookup_elem(&sluice_l4_svc, &k);
}

/* The flow's hash: packet fields only, so every node picks the same slot for it. */
static __always_inline __u32 flow_hash(const struct sluice_l4_flow_key *k)
{
	__u64 h = ((__u64)k->saddr << 32 | k->daddr) * 0x9E3779B97F4A7C15ULL;

	h ^= ((__u64)k->sport << 16 | k->dport) + 0x632BE59BD9B4E019ULL + (h << 6) + (h >> 2);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (__u32)h;
}

/* Allocates a SNAT port for a new flow by inserting its reverse entry; 0 when none is free. */
static __always_inline __be16 snat_port(const struct sluice_l4_config *cfg,
					const struct sluice_l4_backend *be, __be32 snat_addr,
					const struct sluice_l4_flow_key *client, __u32 hash)
{
	struct sluice_l4_rev rev = {.client = *client};
	struct sluice_l4_flow_key rk = {
		.saddr = be->addr, .daddr = snat_addr, .sport = be->port, .proto = IPPROTO_TCP};
	__u32 range = (__u32)cfg->snat_port_hi - cfg->snat_port_lo + 1;
	int i;

	if (cfg->snat_port_hi < cfg->snat_port_lo)
		return 0;
#pragma unroll
	for (i = 0; i < SLUICE_L4_SNAT_TRIES; i++) {
		__u16 port = cfg->snat_port_lo + (hash + i * 2654435761u) % range;

		rk.dport = bpf_htons(port);
		if (bpf_map_update_elem(&sluice_l4_rev, &rk, &rev, BPF_NOEXIST) == 0)
			return rk.dport;
	}
	return 0;
}

/* Maglev: the backend for a new flow of `svc`, or a reason. */
static __always_inline int pick(struct sluice_l4_service *svc, __u32 hash, __u32 *backend_id,
				struct sluice_l4_backend **backend)
{
	void *table;
	__u32 slot, *id;

	if (svc->backend_count == 0 || svc->table_size == 0)
		return SLUICE_L4_NO_BACKEND;
	table = bpf_map_lookup_elem(&sluice_l4_ring, &svc->id);
	if (!table)
		return SLUICE_L4_NO_BACKEND;
	slot = hash % svc->table_size;
	id = bpf_map_lookup_elem(table, &slot);
	if (!id)
		return SLUICE_L4_NO_BACKEND;
	*backend_id = *id;
	*backend = bpf_map_lookup_elem(&sluice_l4_be, id);
	if (!*backend)
		return SLUICE_L4_NO_BACKEND;
	if ((*backend)->state == SLUICE_L4_BACKEND_LOCAL)
		return SLUICE_L4_BACKEND_LOCAL_R;
	if ((*backend)->state != SLUICE_L4_BACKEND_ACTIVE)
		return SLUICE_L4_NO_BACKEND;
	return -1;
}

/* A SYN to a service without a live flow: pick, route, allocate, insert, forward. */
static __always_inline int new_flow(struct xdp_md *ctx, struct pkt *p,
				    const struct sluice_l4_config *cfg,
				    struct sluice_l4_service *svc)
{
	struct sluice_l4_backend *be = NULL;
	struct sluice_l4_flow f = {};
	struct bpf_fib_lookup fl;
	__u32 hash = flow_hash(&p->key), id = 0, oif = 0;
	__be32 *snat;
	int reason;

	reason = pick(svc, hash, &id, &be);
	if (reason >= 0 || !be)
		return count(reason >= 0 ? reason : SLUICE_L4_NO_BACKEND, XDP_PASS);
	/* Route to the backend as the packet will look (source still the client's). */
	f.backend_addr = be->addr;
	f.backend_port = be->port;
	p->key.proto = IPPROTO_TCP;
	{
		__be32 old = p->ip->daddr;

		p->ip->daddr = be->addr;
		reason = fib(ctx, p->ip, &oif, &fl);
		p->ip->daddr = old;
	}
	if (reason < 0)
		return count(SLUICE_L4_NO_FIB, XDP_PASS);
	snat = bpf_map_lookup_elem(&sluice_l4_snat, &oif);
	if (!snat)
		return count(SLUICE_L4_NO_SNAT_ADDR, XDP_PASS);
	f.snat_addr = *snat;
	f.snat_port = snat_port(cfg, be, f.snat_addr, &p->key, hash);
	if (f.snat_port == 0)
		return count(SLUICE_L4_SNAT_EXHAUSTED, XDP_PASS);
	f.backend_id = id;
	f.service_id = svc->id;
	f.created_ns = bpf_ktime_get_ns();
	account(&f, p, true, f.created_ns);
	if (bpf_map_update_elem(&sluice_l4_flows, &p->key, &f, BPF_ANY) != 0) {
		forget(&p->key, &f);
		return count(SLUICE_L4_SNAT_EXHAUSTED, XDP_PASS);
	}
	count(SLUICE_L4_NEW_FLOW, 0);
	nat4(p->ip, p->tcp, f.snat_addr, f.backend_addr, f.snat_port, f.backend_port);
	return send(ctx, p, &fl, oif, SLUICE_L4_FORWARD);
}

/* Whether a flow must end now because its backend was removed under the reset policy. */
static __always_inline bool reset_removed(const struct sluice_l4_config *cfg,
					  const struct sluice_l4_flow *f)
{
	struct sluice_l4_backend *be;

	if (!(cfg->flags & SLUICE_L4_CFG_F_RESET_REMOVED))
		return false;
	be = bpf_map_lookup_elem(&sluice_l4_be, &f->backend_id);
	return !be || be->state == SLUICE_L4_BACKEND_UNUSED || be->addr != f->backend_addr ||
	       be->port != f->backend_port;
}

/* A packet from a client to a TCP route. */
static __always_inline int forward(struct xdp_md *ctx, struct pkt *p,
				   const struct sluice_l4_config *cfg,
				   struct sluice_l4_service *svc)
{
	bool syn = p->tcp->syn && !p->tcp->ack;
	struct sluice_l4_flow *f = bpf_map_lookup_elem(&sluice_l4_flows, &p->key);
	struct bpf_fib_lookup fl;
	__u64 now = bpf_ktime_get_ns();
	__u32 oif = 0;

	if (f && reset_removed(cfg, f)) {
		forget(&p->key, f);
		return count(SLUICE_L4_RESET_REMOVED, XDP_PASS);
	}
	if (f && (expired(f, cfg, now) ||
		  (syn && (f->flags & (SLUICE_L4_FLOW_F_RST | SLUICE_L4_FLOW_F_FIN_CLIENT))))) {
		forget(&p->key, f);
		count(SLUICE_L4_IDLE, 0);
		f = NULL;
	}
	if (!f) {
		if (syn)
			return new_flow(ctx, p, cfg, svc);
		return count(SLUICE_L4_NO_FLOW, XDP_PASS);
	}
	account(f, p, true, now);
	nat4(p->ip, p->tcp, f->snat_addr, f->backend_addr, f->snat_port, f->backend_port);
	if (fib(ctx, p->ip, &oif, &fl) < 0) {
		/* Undo: the kernel gets the packet as it came. */
		nat4(p->ip, p->tcp, p->key.saddr, p->key.daddr, p->key.sport, p->key.dport);
		return count(SLUICE_L4_NO_FIB, XDP_PASS);
	}
	return send(ctx, p, &fl, oif, SLUICE_L4_FORWARD);
}

/* A backend's reply to a SNAT port (rev is its entry). */
static __always_inline int reverse(struct xdp_md *ctx, struct pkt *p,
				   const struct sluice_l4_rev *rev)
{
	struct sluice_l4_flow_key client = rev->client;
	struct sluice_l4_flow *f = bpf_map_lookup_elem(&sluice_l4_flows, &client);
	struct bpf_fib_lookup fl;
	__u32 oif = 0;

	if (!f || f->snat_port != p->key.dport || f->backend_addr != p->key.saddr) {
		/* The LRU evicted the flow (or a new one took its tuple): the reply is stale. */
		bpf_map_delete_elem(&sluice_l4_rev, &p->key);
		return count(SLUICE_L4_NO_FLOW, XDP_PASS);
	}
	account(f, p, false, bpf_ktime_get_ns());
	nat4(p->ip, p->tcp, client.daddr, client.saddr, client.dport, client.sport);
	if (fib(ctx, p->ip, &oif, &fl) < 0) {
		nat4(p->ip, p->tcp, p->key.saddr, p->key.daddr, p->key.sport, p->key.dport);
		return count(SLUICE_L4_NO_FIB, XDP_PASS);
	}
	return send(ctx, p, &fl, oif, SLUICE_L4_REVERSE);
}

/* ---- ICMP errors -------------------------------------------------------------------------- */

/*
 * An ICMP error about a packet of a fast-path flow, from either side, is rewritten for the other
 * side as if it had been sent about the packet that side sent:
 *   - from the backend side, quoting node:SNAT port -> backend (fragmentation needed on the way
 *     to the backend, say): the client gets it about its own packet, client -> listener;
 *   - from the client side, quoting listener -> client (a reply too big for the client's path):
 *     the backend gets it about its own packet, backend -> node:SNAT port.
 * The outer header goes from the quoted packet's destination to its source. The ICMP checksum
 * covers the quoted bytes, so every inner change (addresses, ports and the inner IP checksum
 * itself) is folded into it; the quoted TCP checksum is left alone (receivers do not check it
 * and it is often cut off).
 */
struct icmp_quote {
	__be32 saddr, daddr; /* the quoted packet as the receiver of the error sent it */
	__be16 sport, dport;
};

/* Finds the flow the quoted packet belongs to; false when it is none of ours. */
static __always_inline bool icmp_translation(const struct iphdr *in, const __be16 *ports,
					     struct icmp_quote *q, __u32 *reason)
{
	struct sluice_l4_flow_key k = {.proto = IPPROTO_TCP};
	struct sluice_l4_rev *rev;
	struct sluice_l4_flow *f;

	/* Backend side: the quote is node:SNAT -> backend; the reverse map names the client. */
	k.saddr = in->daddr;
	k.daddr = in->saddr;
	k.sport = ports[1];
	k.dport = ports[0];
	rev = bpf_map_lookup_elem(&sluice_l4_rev, &k);
	if (rev) {
		q->saddr = rev->client.saddr;
		q->daddr = rev->client.daddr;
		q->sport = rev->client.sport;
		q->dport = rev->client.dport;
		*reason = SLUICE_L4_ICMP_TRANSLATED;
		return true;
	}
	/* Client side: the quote is listener -> client; the same swap is the client flow key. */
	f = bpf_map_lookup_elem(&sluice_l4_flows, &k);
	if (!f)
		return false;
	q->saddr = f->backend_addr;
	q->daddr = f->snat_addr;
	q->sport = f->backend_port;
	q->dport = f->snat_port;
	*reason = SLUICE_L4_ICMP_TO_BACKEND;
	return true;
}

static __always_inline int icmp_error(struct xdp_md *ctx, struct pkt *p)
{
	struct iphdr *in = (void *)(p->icmp + 1);
	struct bpf_fib_lookup fl;
	struct icmp_quote q;
	__u32 oif = 0, reason = 0;
	__be16 *ports;
	__u16 old_check;

	if (p->icmp->type != ICMP_DEST_UNREACH_ && p->icmp->type != ICMP_TIME_EXCEEDED_)
		return count(SLUICE_L4_NOT_OURS, XDP_PASS);
	if ((void *)(in + 1) > p->data_end || in->ihl != 5 || in->protocol != IPPROTO_TCP)
		return count(SLUICE_L4_NOT_OURS, XDP_PASS);
	ports = (void *)(in + 1);
	if ((void *)(ports + 2) > p->data_end)
		return count(SLUICE_L4_NOT_OURS, XDP_PASS);
	if (!icmp_translation(in, ports, &q, &reason))
		return count(SLUICE_L4_NOT_OURS, XDP_PASS);
	/* Inner header first, its changes folded into the ICMP checksum. */
	old_check = in->check;
	csum_replace4(&in->check, in->saddr, q.saddr);
	csum_replace4(&in->check, in->daddr, q.daddr);
	csum_replace4(&p->icmp->checksum, in->saddr, q.saddr);
	csum_replace4(&p->icmp->checksum, in->daddr, q.daddr);
	csum_replace2(&p->icmp->checksum, old_check, in->check);
	csum_replace2(&p->icmp->checksum, ports[0], q.sport);
	csum_replace2(&p->icmp->checksum, ports[1], q.dport);
	in->saddr = q.saddr;
	in->daddr = q.daddr;
	ports[0] = q.sport;
	ports[1] = q.dport;
	/* Outer: from the quoted packet's destination to its source (the IP checksum only). */
	csum_replace4(&p->ip->check, p->ip->saddr, q.daddr);
	csum_replace4(&p->ip->check, p->ip->daddr, q.saddr);
	p->ip->saddr = q.daddr;
	p->ip->daddr = q.saddr;
	if (fib(ctx, p->ip, &oif, &fl) < 0)
		return count(SLUICE_L4_NO_FIB, XDP_DROP); /* already rewritten: cannot pass it */
	return send(ctx, p, &fl, oif, reason);
}

/* ---- entry -------------------------------------------------------------------------------- */

SEC("xdp")
int sluice_xdp_l4(struct xdp_md *ctx)
{
	struct sluice_l4_service *svc;
	struct sluice_l4_config *cfg;
	struct sluice_l4_rev *rev;
	struct pkt p = {};
	__u32 zero = 0;
	int reason;

	cfg = bpf_map_lookup_elem(&sluice_l4_cfg, &zero);
	if (!cfg || !(cfg->flags & SLUICE_L4_CFG_F_ENABLED))
		return count(SLUICE_L4_DISABLED, XDP_PASS);
	reason = parse(ctx, &p);
	if (reason >= 0)
		return count(reason, XDP_PASS);
	if (p.icmp)
		return icmp_error(ctx, &p);
	/* Never taken (parse fills tcp when it is not ICMP), but the verifier cannot know that
	 * p.tcp is a packet pointer on this path unless it is checked: without it, whether the
	 * program loads depends on how the compiler happens to lay out the ICMP branch. */
	if (!p.tcp)
		return count(SLUICE_L4_NOT_OURS, XDP_PASS);
	svc = service_of(&p);
	if (svc && (svc->flags & SLUICE_L4_SVC_F_FAST))
		return forward(ctx, &p, cfg, svc);
	rev = bpf_map_lookup_elem(&sluice_l4_rev, &p.key);
	if (rev)
		return reverse(ctx, &p, rev);
	return count(SLUICE_L4_NOT_OURS, XDP_PASS);
}

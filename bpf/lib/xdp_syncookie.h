/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * xdp_syncookie.h - the synproxy half of xdp_frontdoor.bpf.c: raw SYN cookies answered with
 * XDP_TX and checked on the ACK. Included once, after the front door's maps and parser; only the
 * sluice_xdp_synproxy program calls into it, so an object whose synproxy program is not loaded
 * (autoload off on kernels before 6.0) never asks the verifier for helpers 204-207.
 *
 * A listener is found with bpf_skc_lookup_tcp (5.2); an established connection, a TIME_WAIT or a
 * request socket is the kernel's business and passes. For a listener, pressure and the two-minute
 * window of the kernel's own cookie check are read from its tcp_sock (bpf_skc_to_tcp_sock: needs
 * CAP_PERFMON, as the splice verdict does).
 */
#ifndef SLUICE_XDP_SYNCOOKIE_H
#define SLUICE_XDP_SYNCOOKIE_H

/* The reply: IP header without options, TCP header with one MSS option. */
struct synack4 {
	struct iphdr ip;
	struct tcphdr tcp;
	__u8 opt[4];
};
struct synack6 {
	struct ipv6hdr ip;
	struct tcphdr tcp;
	__u8 opt[4];
};

static __always_inline __u32 csum_words(const void *buf, int bytes, __u32 sum)
{
	const __u16 *w = buf;
	int i;

#pragma unroll
	for (i = 0; i < 64; i++) {
		if (i * 2 >= bytes)
			break;
		sum += w[i];
	}
	return sum;
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The listener (and no connection) this packet would reach, or NULL; caller releases. */
static __always_inline struct bpf_sock *listener_of(struct xdp_md *ctx, struct pkt *p)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 size;

	if (p->family == SLUICE_XDP_FAMILY_V4) {
		t.ipv4.saddr = p->ip4->saddr;
		t.ipv4.daddr = p->ip4->daddr;
		t.ipv4.sport = p->tcp->source;
		t.ipv4.dport = p->tcp->dest;
		size = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, p->src, 16);
		__builtin_memcpy(t.ipv6.daddr, p->dst, 16);
		t.ipv6.sport = p->tcp->source;
		t.ipv6.dport = p->tcp->dest;
		size = sizeof(t.ipv6);
	}
	sk = bpf_skc_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return NULL;
	if (sk->state != TCP_LISTEN_STATE) {
		bpf_sk_release(sk);
		return NULL;
	}
	return sk;
}

/* Whether to answer a SYN for this listener with a cookie: its SYN queue is full (or the agent
 * asked for cookies always), and the kernel will accept the cookie ACK (recent overflow). */
static __always_inline bool cookie_wanted(struct bpf_sock *sk, const struct sluice_xdp_config *cfg)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct sock_reuseport *reuse;
	__u32 stamp;

	if (!tp)
		return false;
	if (!(cfg->flags & SLUICE_XDP_CFG_F_SYNCOOKIE_ALWAYS) &&
	    (__u32)tp->inet_conn.icsk_accept_queue.qlen.counter <
		    tp->inet_conn.icsk_inet.sk.sk_max_ack_backlog)
		return false;
	/* tcp_synq_overflow stamps the reuseport group when there is one, else the socket. */
	reuse = tp->inet_conn.icsk_inet.sk.sk_reuseport_cb;
	stamp = reuse ? reuse->synq_overflow_ts : (__u32)tp->rx_opt.ts_recent_stamp;
	return stamp != 0 && (__u32)bpf_jiffies64() - stamp < COOKIE_STAMP_WINDOW;
}

/* Rewrites the packet into the SYN-ACK for `cookie`; false if it cannot be resized. */
static __always_inline bool reply4(struct xdp_md *ctx, struct pkt *p, __u32 cookie, __u16 mss)
{
	struct synack4 r = {};
	__u32 l3 = p->l3_off, sum;
	void *data, *end;
	__u8 mac[6];

	r.ip.version = 4;
	r.ip.ihl = 5;
	r.ip.tot_len = bpf_htons(sizeof(r));
	r.ip.frag_off = bpf_htons(0x4000); /* DF */
	r.ip.ttl = 64;
	r.ip.protocol = IPPROTO_TCP;
	r.ip.saddr = p->ip4->daddr;
	r.ip.daddr = p->ip4->saddr;
	r.tcp.source = p->tcp->dest;
	r.tcp.dest = p->tcp->source;
	r.tcp.seq = bpf_htonl(cookie);
	r.tcp.ack_seq = bpf_htonl(bpf_ntohl(p->tcp->seq) + 1);
	r.tcp.doff = (sizeof(r.tcp) + sizeof(r.opt)) / 4;
	r.tcp.syn = 1;
	r.tcp.ack = 1;
	r.tcp.window = bpf_htons(65535);
	r.opt[0] = 2; /* MSS */
	r.opt[1] = 4;
	r.opt[2] = mss >> 8;
	r.opt[3] = mss & 0xff;
	r.ip.check = csum_fold(csum_words(&r.ip, sizeof(r.ip), 0));
	sum = csum_words(&r.ip.saddr, 8, 0) + bpf_htons(IPPROTO_TCP) +
	      bpf_htons(sizeof(r.tcp) + sizeof(r.opt));
	r.tcp.check = csum_fold(csum_words(&r.tcp, sizeof(r.tcp) + sizeof(r.opt), sum));

	__builtin_memcpy(mac, p->eth->h_source, 6);
	__builtin_memcpy(p->eth->h_source, p->eth->h_dest, 6);
	__builtin_memcpy(p->eth->h_dest, mac, 6);
	if (l3 > 22)
		return false;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (bpf_xdp_adjust_tail(ctx, (int)(l3 + sizeof(r)) - (int)(end - data)))
		return false;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + l3 + sizeof(r) > end)
		return false;
	__builtin_memcpy(data + l3, &r, sizeof(r));
	return true;
}

static __always_inline bool reply6(struct xdp_md *ctx, struct pkt *p, __u32 cookie, __u16 mss)
{
	struct synack6 r = {};
	__u32 l3 = p->l3_off, sum;
	void *data, *end;
	__u8 mac[6];

	r.ip.version = 6;
	r.ip.payload_len = bpf_htons(sizeof(r.tcp) + sizeof(r.opt));
	r.ip.nexthdr = IPPROTO_TCP;
	r.ip.hop_limit = 64;
	__builtin_memcpy(&r.ip.saddr, p->dst, 16);
	__builtin_memcpy(&r.ip.daddr, p->src, 16);
	r.tcp.source = p->tcp->dest;
	r.tcp.dest = p->tcp->source;
	r.tcp.seq = bpf_htonl(cookie);
	r.tcp.ack_seq = bpf_htonl(bpf_ntohl(p->tcp->seq) + 1);
	r.tcp.doff = (sizeof(r.tcp) + sizeof(r.opt)) / 4;
	r.tcp.syn = 1;
	r.tcp.ack = 1;
	r.tcp.window = bpf_htons(65535);
	r.opt[0] = 2;
	r.opt[1] = 4;
	r.opt[2] = mss >> 8;
	r.opt[3] = mss & 0xff;
	sum = csum_words(&r.ip.saddr, 32, 0) + bpf_htons(sizeof(r.tcp) + sizeof(r.opt)) +
	      bpf_htons(IPPROTO_TCP);
	r.tcp.check = csum_fold(csum_words(&r.tcp, sizeof(r.tcp) + sizeof(r.opt), sum));

	__builtin_memcpy(mac, p->eth->h_source, 6);
	__builtin_memcpy(p->eth->h_source, p->eth->h_dest, 6);
	__builtin_memcpy(p->eth->h_dest, mac, 6);
	if (l3 > 22)
		return false;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (bpf_xdp_adjust_tail(ctx, (int)(l3 + sizeof(r)) - (int)(end - data)))
		return false;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + l3 + sizeof(r) > end)
		return false;
	__builtin_memcpy(data + l3, &r, sizeof(r));
	return true;
}

/* A SYN that passed every check, to a listener under pressure: answer it here. */
static __always_inline int cookie_syn(struct xdp_md *ctx, struct pkt *p)
{
	__u8 th[60] = {};
	__u32 len = p->tcp_len;
	__s64 v;

	if (len < sizeof(struct tcphdr) || len > sizeof(th))
		return SLUICE_XDP_COOKIE_ERROR;
	/* The helper parses the MSS option, so it needs the whole header; a stack copy gives the
	 * verifier a size it can bound where the packet's variable length cannot. */
	if (bpf_xdp_load_bytes(ctx, (void *)p->tcp - (void *)(long)ctx->data, th, len))
		return SLUICE_XDP_COOKIE_ERROR;
	if (p->family == SLUICE_XDP_FAMILY_V4)
		v = bpf_tcp_raw_gen_syncookie_ipv4(p->ip4, (struct tcphdr *)th, len);
	else
		v = bpf_tcp_raw_gen_syncookie_ipv6(p->ip6, (struct tcphdr *)th, len);
	if (v < 0)
		return SLUICE_XDP_COOKIE_ERROR;
	if (p->family == SLUICE_XDP_FAMILY_V4 ? !reply4(ctx, p, (__u32)v, (__u16)(v >> 32))
					      : !reply6(ctx, p, (__u32)v, (__u16)(v >> 32)))
		return SLUICE_XDP_COOKIE_ERROR;
	return SLUICE_XDP_COOKIE_SENT;
}

/* The synproxy step for an admitted in-scope packet: a reason, or -1 to pass it as usual. */
static __always_inline int syncookie(struct xdp_md *ctx, struct pkt *p,
				     const struct sluice_xdp_config *cfg)
{
	struct tcphdr *th = p->tcp;
	struct bpf_sock *sk;
	bool want;
	long err;

	if (!(cfg->flags & SLUICE_XDP_CFG_F_SYNCOOKIE) || th->rst || !(th->syn ^ th->ack))
		return -1;
	sk = listener_of(ctx, p);
	if (!sk)
		return -1;
	if (th->syn) {
		want = cookie_wanted(sk, cfg);
		bpf_sk_release(sk);
		return want ? cookie_syn(ctx, p) : -1;
	}
	bpf_sk_release(sk);
	/* An ACK for a listener: only a cookie ACK is legitimate here. */
	if (p->family == SLUICE_XDP_FAMILY_V4)
		err = bpf_tcp_raw_check_syncookie_ipv4(p->ip4, th);
	else
		err = bpf_tcp_raw_check_syncookie_ipv6(p->ip6, th);
	return err == 0 ? SLUICE_XDP_COOKIE_VALID : SLUICE_XDP_COOKIE_INVALID;
}

#endif /* SLUICE_XDP_SYNCOOKIE_H */

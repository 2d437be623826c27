// SPDX-License-Identifier: GPL-2.0-only
/*
 * splice.bpf.c - sockmap splice of proxied connection pairs.
 *
 * The agent owns a client-side and a backend-side socket per flow. Once a flow no longer needs
 * per-message decisions it names each socket's peer in sluice_peers, inserts both sockets into
 * sluice_targets and then into sluice_socks_v3; from then on the stream verdict below redirects
 * every byte received on one socket to the other socket's egress (flags 0: sent, not queued for
 * reading), in both directions, without waking userspace.
 *
 * Two sockhashes, so that arming a pair has no window (tests/kernels/FINDINGS.md, finding 5):
 * the verdict is attached to sluice_socks_v3 and redirects into sluice_targets, which has no
 * program. A socket in a program-less map keeps its normal receive path, and a psock without a
 * verdict accepts one from a second map later. The agent inserts both sockets into
 * sluice_targets first, so by the time either socket's verdict can run, its peer is already a
 * valid redirect target. With one map, a burst on the first socket inserted could run the
 * verdict before the second was in (SO_RCVLOWAT does not hold back data_ready under memory
 * pressure or a closed receive window) and had its bytes parked.
 *
 * Kernel behaviour this relies on (verdict-only, no stream parser; TCP verdict-only since ~5.10):
 *  - The verdict runs when new data reaches a socket in the map. Data already sitting in the
 *    receive queue when the socket is inserted waits for the next arrival, so the agent inserts
 *    only after draining what it reads and writes any consumed prefix itself.
 *  - A redirected skb is queued on the peer's psock and sent from a workqueue (sk_psock_backlog);
 *    that queue is not charged to the socket buffers, so there is no backpressure end to end:
 *    on 6.18 a client pushed 512 MiB into a pair whose backend never read.
 *  - SK_PASS moves the bytes to this socket's psock ingress queue: visible to recv/recvmsg only
 *    (older kernels report FIONREAD 0 for them, 6.18 counts them; splice(2) did not see them
 *    before 2025). A socket in the map without a peer entry is therefore left to userspace,
 *    which reads it with recv.
 *  - Redirect budget (sluice_flow.budget): the verdict reads the peer's tcp write_seq to learn how
 *    many redirected bytes the peer's TCP has taken; once the untaken rest would exceed the
 *    budget it holds the flow (SLUICE_FLOW_F_HELD) and passes this and every later skb to this
 *    socket's own receive path. Held bytes are charged to this socket's receive buffer, so TCP
 *    closes the window towards the sender: a peer that stops reading costs at most budget +
 *    socket buffers per direction. The agent relays a held direction itself, in order, after
 *    the peer has taken the redirected bytes (sluice_flow_stats.bytes).
 *  - Sockets leave both sockhashes by themselves when closed; sluice_peers and sluice_flow_stats
 *    entries do not, so the agent removes them (SpliceDatapath::removePair/clearStale).
 *  - Helpers: bpf_skc_to_tcp_sock (5.9) needs CAP_PERFMON in the loader on every kernel tested
 *    (docs/kernels.md). tcp_sock fields are read with a direct, CO-RE-relocated load through the
 *    BTF pointer it returns, never BPF_CORE_READ: that compiles to bpf_probe_read_kernel, which
 *    lockdown=confidentiality refuses, and libbpf then substitutes bpf_probe_read, which sk_skb
 *    programs may not call.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "sluice_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* The agent's spliced sockets, keyed by socket cookie; the verdict below is attached here. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SLUICE_MAX_SOCKETS);
	__type(key, struct sluice_flow_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_socks_v3 SEC(".maps");

/* The same sockets, without a program: what the verdict redirects into (inserted first). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SLUICE_MAX_SOCKETS);
	__type(key, struct sluice_flow_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_targets SEC(".maps");

/* Each spliced socket's peer and flow metadata; written only by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_MAX_SOCKETS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_flow_key);
	__type(value, struct sluice_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_peers_v2 SEC(".maps");

/* Per-socket byte/skb counters; the agent creates the entry, the verdict only adds to it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_MAX_SOCKETS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_flow_key);
	__type(value, struct sluice_flow_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_flow_stats SEC(".maps");

/* Verdict outcomes by enum sluice_reason, summed over CPUs for metrics. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_REASON_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_verdicts SEC(".maps");

static __always_inline void count_reason(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&sluice_verdicts, &reason);

	/* Atomic even per CPU: a preempted process-context run can interleave with softirq. */
	if (n)
		__sync_fetch_and_add(n, 1);
}

/*
 * True when redirecting `len` more bytes would leave more than flow->budget bytes queued for the
 * peer outside its TCP send queue. Redirected bytes are st->bytes; the peer's TCP has taken
 * write_seq - seq_base of them (after the base, only redirects write to the peer socket: the
 * agent writes its own bytes before arming). 32-bit sequence arithmetic is exact while the
 * backlog stays below 2 GiB, which the budget guarantees.
 */
static __always_inline bool over_budget(struct sluice_flow *flow, struct sluice_flow_stats *st,
					struct sluice_flow_key *peer, __u64 len)
{
	struct bpf_sock *psk;
	struct tcp_sock *tp;
	__u32 write_seq, taken, backlog;

	psk = bpf_map_lookup_elem(&sluice_targets, peer);
	if (!psk)
		return false; /* the redirect below finds no peer either and parks the bytes */
	tp = bpf_skc_to_tcp_sock(psk);
	/* A direct BTF load (vmlinux.h's preserve_access_index keeps it CO-RE-relocated). */
	write_seq = tp ? tp->write_seq : 0;
	bpf_sk_release(psk);
	if (!tp)
		return false;

	if (!(flow->flags & SLUICE_FLOW_F_SEQ_BASE)) {
		flow->seq_base = write_seq - (__u32)st->bytes;
		flow->flags |= SLUICE_FLOW_F_SEQ_BASE;
	}
	taken = write_seq - flow->seq_base;
	backlog = (__u32)st->bytes - taken;
	return (__u64)backlog + len > flow->budget;
}

SEC("sk_skb/stream_verdict")
int sluice_splice_verdict(struct __sk_buff *skb)
{
	struct sluice_flow_key self = {.cookie = bpf_get_socket_cookie(skb)};
	struct sluice_flow_key peer;
	struct sluice_flow_stats *st;
	struct sluice_flow *flow;
	__u64 len = skb->len;

	flow = bpf_map_lookup_elem(&sluice_peers_v2, &self);
	if (!flow) {
		count_reason(SLUICE_REASON_NO_PEER);
		return SK_PASS;
	}
	if (flow->strategy != SLUICE_STRATEGY_REDIRECT) {
		count_reason(SLUICE_REASON_USERSPACE);
		return SK_PASS;
	}

	if (len == 0) {
		/*
		 * A FIN without payload. Redirected, the peer's psock worker "sends" 0 bytes, which
		 * it treats as a broken pipe: it sets EPIPE on the peer and stops all its redirects
		 * (seen on 6.18 as half-closes turning into resets). Passed, it reaches this
		 * socket's reader as EOF, and the agent shuts the peer down after the redirected
		 * bytes are out.
		 */
		count_reason(SLUICE_REASON_EMPTY);
		return SK_PASS;
	}

	peer.cookie = flow->peer_cookie;
	st = bpf_map_lookup_elem(&sluice_flow_stats, &self);
	if (st)
		st->last_seen_ns = bpf_ktime_get_ns();

	if (flow->flags & SLUICE_FLOW_F_HELD) {
		if (st)
			__sync_fetch_and_add(&st->passed_bytes, len);
		count_reason(SLUICE_REASON_HELD);
		return SK_PASS;
	}
	if (flow->budget != 0 && st && over_budget(flow, st, &peer, len)) {
		/* Verdicts of one socket run one at a time, in stream order (so a plain store is
		 * enough; the agent writes the entry only before arming): from this skb on, every
		 * byte of this direction goes to userspace and none is redirected. */
		flow->flags |= SLUICE_FLOW_F_HELD;
		__sync_fetch_and_add(&st->passed_bytes, len);
		count_reason(SLUICE_REASON_OVER_BUDGET);
		return SK_PASS;
	}

	if (bpf_sk_redirect_hash(skb, &sluice_targets, &peer, 0) != SK_PASS) {
		/*
		 * The peer is not a target: it was closed (arming inserts both targets before
		 * either socket gets this verdict). TCP already acknowledged these bytes, so
		 * dropping them would corrupt the stream silently; SK_PASS parks them on this
		 * socket's ingress queue where the agent can see them (readable, counted) and
		 * decide to relay or close.
		 */
		if (st)
			__sync_fetch_and_add(&st->passed_bytes, len);
		count_reason(SLUICE_REASON_PEER_MISSING);
		return SK_PASS;
	}

	if (st) {
		__sync_fetch_and_add(&st->bytes, len);
		__sync_fetch_and_add(&st->packets, 1);
	}
	count_reason(SLUICE_REASON_REDIRECT);
	return SK_PASS;
}

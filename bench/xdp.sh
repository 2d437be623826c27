#!/usr/bin/env bash
# The XDP front door against nftables and against no filter, on the node side of a veth pair:
# how many packets of a denied source, and of a SYN flood over the per-source limit, the node
# disposes of per CPU-second.
#
#   bash bench/xdp.sh BUILD_DIR      (root; env: XDP_BENCH_PACKETS (default 2000000),
#                                     XDP_BENCH_PASSES (3), XDP_BENCH_RATE (SYN limit, 100/s))
#
# Two network namespaces joined by a veth pair: "gen" runs bench/tools/synflood.c (AF_PACKET,
# prebuilt SYN frames, sendmmsg) pinned to CPU 1; "node" has the listener (ingress-agent on
# 10.99.0.1:8080) and, per mechanism:
#   xdp       the front door, native XDP on the node's veth end (--deny-source-ranges with the
#             denied source; --syn-rate-per-source for the flood);
#   nftables  an `inet` table, prerouting hook at priority -300 (before conntrack): `ip saddr
#             ... drop` for the denied source; `meter ... limit rate over N/second drop` for the
#             flood;
#   none      no filter: every SYN reaches TCP, which answers it (the listener's SYN queue fills,
#             then SYN cookies). A userspace deny (accept, then close) could act only after this.
# Sources are unassigned addresses with static neighbour entries, so the node's SYN-ACKs leave
# and are dropped by gen's stack without RSTs coming back.
#
# Two deliveries (XDP_BENCH_DELIVERY, default "skb frame"):
#   skb    gen's veth straight into the node's: each SYN reaches the node as an skb the sender
#          already allocated (veth_xmit), which is not how a NIC delivers;
#   frame  gen's veth into a relay namespace whose end runs a one-line XDP_REDIRECT program into a
#          second veth pair ending in the node: the node's veth then receives raw XDP frames
#          (ndo_xdp_xmit), as a NIC driver's receive ring holds them. XDP acts on the frame before
#          any skb exists; without an XDP verdict the veth builds the skb from the frame (NAPI,
#          GRO on so that it runs without a program) and the stack takes it, as after a NIC.
#          This is the comparison the issue asks for; the relay's cost lands in the floor.
#
# Beside it, the XDP program alone: BPF_PROG_TEST_RUN (bpftool prog run, repeat 1e7) of the
# attached program on one denied SYN, the kernel's own average; what a NIC driver would pay per
# dropped packet on top of its receive loop, with no skb at all.
#
# Node CPU per packet. A veth delivers in the sender's context: veth_xmit raises the receive
# softirq (NAPI with XDP, the backlog without) and it runs when the send re-enables bottom halves,
# on the sender's CPU and charged to the sender's runtime (this kernel has no IRQ time
# accounting). So: the generator's exact CPU time (getrusage) plus ksoftirqd/1's (softirq work
# deferred under load) plus, for "none", the agent's. That total holds the sender's own cost too
# (AF_PACKET, skb allocation, veth_xmit), which this host cannot measure apart (no dummy or ifb
# module; a downed peer makes sendmmsg fail). So each pass also runs a floor: a bare XDP_DROP
# program on the node end, the cheapest way a veth can dispose of a frame. "Above the floor" =
# a mechanism's total minus the floor's: the filter's own work (for XDP: parsing, map lookups,
# counters; for nftables: the skb receive path up to the prerouting hook and the rule; for none:
# the TCP stack answering the SYN). Packets per CPU-second above the floor = 1 / that. Other work on the machine is not counted, unlike /proc/stat's global softirq time
# (two other engineers build and test on these two cores). Drop counts come from the
# mechanism's own counters.
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
PACKETS=${XDP_BENCH_PACKETS:-2000000}
PASSES=${XDP_BENCH_PASSES:-3}
DELIVERIES=${XDP_BENCH_DELIVERY:-skb frame}
RATE=${XDP_BENCH_RATE:-100}
AGENT=$BUILD/userspace/app/ingress-agent
CTL=$BUILD/cli/ingressctl
[[ $(id -u) == 0 ]] || { echo "needs root" >&2; exit 1; }
command -v nft > /dev/null || { echo "needs nft (apt-get install nftables)" >&2; exit 1; }
command -v ethtool > /dev/null || { echo "needs ethtool (apt-get install ethtool)" >&2; exit 1; }
WORK=$(mktemp -d)
GEN=sluice-bg-$$
NODE=sluice-bn-$$
RELAY=sluice-br-$$
PIN=/sys/fs/bpf/sluice-xdp-bench-$$
agent_pid=
cleanup() {
  [[ -n $agent_pid ]] && kill "$agent_pid" 2> /dev/null && wait "$agent_pid" 2> /dev/null
  ip netns del "$GEN" 2> /dev/null
  ip netns del "$NODE" 2> /dev/null
  ip netns del "$RELAY" 2> /dev/null
  rm -rf "$WORK" "$PIN"
}
trap cleanup EXIT

gcc -O2 -Wall -o "$WORK/synflood" "$here/tools/synflood.c"
printf '%s\n' '#include "vmlinux.h"' '#include <bpf/bpf_helpers.h>' \
  'char LICENSE[] SEC("license") = "GPL";' \
  'SEC("xdp") int sluice_xdp_drop(struct xdp_md *ctx) { return XDP_DROP; }' > "$WORK/xdp_drop.bpf.c"
clang -O2 -g -target bpf -I"$here/../vmlinux/$(uname -m)" -c "$WORK/xdp_drop.bpf.c" \
  -o "$WORK/xdp_drop.bpf.o"
DENIED=10.99.0.50 FLOOD=10.99.0.51
# topology DELIVERY: (re)builds gen -> node (skb) or gen -> relay => node (frame).
topology() {
  ip netns del "$GEN" 2> /dev/null || true
  ip netns del "$NODE" 2> /dev/null || true
  ip netns del "$RELAY" 2> /dev/null || true
  ip netns add "$GEN" && ip netns add "$NODE"
  if [[ $1 == frame ]]; then
    ip netns add "$RELAY"
    ip link add vg netns "$GEN" type veth peer name vr netns "$RELAY"
    ip link add vo netns "$RELAY" type veth peer name vn netns "$NODE"
    ip -n "$RELAY" link set vr up && ip -n "$RELAY" link set vo up
    printf '%s\n' '#include "vmlinux.h"' '#include <bpf/bpf_helpers.h>' \
      'char LICENSE[] SEC("license") = "GPL";' \
      "SEC(\"xdp\") int sluice_xdp_relay(struct xdp_md *ctx) { return bpf_redirect($(ip -n "$RELAY" -o link show vo | cut -d: -f1), 0); }" \
      > "$WORK/xdp_relay.bpf.c"
    clang -O2 -g -target bpf -I"$here/../vmlinux/$(uname -m)" -c "$WORK/xdp_relay.bpf.c" \
      -o "$WORK/xdp_relay.bpf.o"
    ip -n "$RELAY" link set dev vr xdpdrv obj "$WORK/xdp_relay.bpf.o" sec xdp
    # NAPI on the node end without a program, so redirected frames are received (and turned into
    # skbs) when no XDP program is attached there.
    ip netns exec "$NODE" ethtool -K vn gro on > /dev/null
  else
    ip link add vg netns "$GEN" type veth peer name vn netns "$NODE"
  fi
  ip -n "$GEN" addr add 10.99.0.2/24 dev vg
  ip -n "$NODE" addr add 10.99.0.1/24 dev vn
  for ns in "$GEN" "$NODE"; do ip -n "$ns" link set lo up; done
  ip -n "$GEN" link set vg up && ip -n "$NODE" link set vn up
  GEN_MAC=$(ip -n "$GEN" -br link show vg | awk '{print $3}')
  NODE_MAC=$(ip -n "$NODE" -br link show vn | awk '{print $3}')
  for a in $DENIED $FLOOD; do
    ip -n "$NODE" neigh add "$a" lladdr "$GEN_MAC" dev vn nud permanent
  done
  ip netns exec "$NODE" sysctl -qw net.ipv4.tcp_syncookies=1
}
cat > "$WORK/deny.yaml" << YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: deny, namespace: sluice-system}
data:
  ranges: "$DENIED/32"
YAML

start_agent() {  # extra flags...
  nsenter --net=/run/netns/"$NODE" taskset -c 0 "$AGENT" --manifests "$WORK" \
    --listen-http 10.99.0.1:8080 --admin 127.0.0.1:10254 --bpf-pin-dir "$PIN" --workers 1 \
    --splice copy --update-status=false --log-level warn "$@" > "$WORK/agent.log" 2>&1 &
  agent_pid=$!
  for _ in $(seq 100); do
    nsenter --net=/run/netns/"$NODE" python3 -c \
      "import socket; socket.create_connection(('10.99.0.1', 8080), 0.2)" 2> /dev/null && return 0
    sleep 0.1
  done
  cat "$WORK/agent.log" >&2
  return 1
}
stop_agent() {
  kill "$agent_pid" 2> /dev/null && wait "$agent_pid" 2> /dev/null
  agent_pid=
}

KSOFTIRQD=$(pgrep -x ksoftirqd/1)
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
xdp_count() {
  nsenter --net=/run/netns/"$NODE" "$CTL" --pin-dir "$PIN" xdp -o json |
    python3 -c "import json,sys; d=json.load(sys.stdin); print(next(c['packets'] for c in d['counters'] if c['reason']=='$1'))"
}
nft_count() {
  ip netns exec "$NODE" nft -j list ruleset | python3 -c '
import json, sys
n = 0
for o in json.load(sys.stdin)["nftables"]:
    for e in o.get("rule", {}).get("expr", []):
        n += e.get("counter", {}).get("packets", 0)
print(n)'
}

# measure MECH CASE SRC: one pass; appends a JSON line to $WORK/runs.
measure() {
  local mech=$1 case=$2 src=$3 before=0 after=0 k0 k1 a0=0 a1=0 out hz
  hz=$(getconf CLK_TCK)
  case $mech in
    xdp) before=$(xdp_count "$([[ $case == denied ]] && echo denied || echo syn_rate)") ;;
    nftables) before=$(nft_count) ;;
  esac
  [[ $mech == none ]] && a0=$(proc_ticks "$agent_pid")
  k0=$(proc_ticks "$KSOFTIRQD")
  out=$(ip netns exec "$GEN" taskset -c 1 "$WORK/synflood" vg "$GEN_MAC" "$NODE_MAC" "$src" \
    10.99.0.1 8080 "$PACKETS")
  sleep 0.2  # let deferred NAPI batches finish
  k1=$(proc_ticks "$KSOFTIRQD")
  [[ $mech == none ]] && a1=$(proc_ticks "$agent_pid")
  case $mech in
    xdp) after=$(xdp_count "$([[ $case == denied ]] && echo denied || echo syn_rate)") ;;
    nftables) after=$(nft_count) ;;
  esac
  python3 - "$mech" "$case" "$out" "$((k1 - k0))" "$((a1 - a0))" "$((after - before))" "$hz" \
    "$delivery" >> "$WORK/runs" << 'PY'
import json, sys
mech, case, out, ksoft, agent, dropped, hz, delivery = sys.argv[1:]
sent, secs, cpu = out.split()
print(json.dumps({"delivery": delivery, "mechanism": mech, "case": case, "sent": int(sent), "send_s": float(secs),
                  "sender_cpu_s": float(cpu), "ksoftirqd_s": int(ksoft) / int(hz),
                  "agent_s": int(agent) / int(hz), "dropped": int(dropped)}))
PY
}

# prog_run SRC: the attached program's average ns on a SYN from SRC, from bpftool prog run.
prog_run() {
  local id
  id=$(ip -n "$NODE" -d link show dev vn | grep -o 'prog/xdp id [0-9]*' | awk '{print $3}')
  python3 - "$WORK/syn.bin" "$GEN_MAC" "$NODE_MAC" "$1" << 'PY'
import socket, struct, sys
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
src, dst = socket.inet_aton(sys.argv[4]), socket.inet_aton("10.99.0.1")
tcp = struct.pack("!HHIIBBHHH", 40000, 8080, 1, 0, 6 << 4, 2, 64240, 0, 0) + b"\x02\x04\x05\xb4"
tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
open(sys.argv[1], "wb").write(mac(sys.argv[3]) + mac(sys.argv[2]) + b"\x08\x00" + ip + tcp)
PY
  bpftool prog run id "$id" data_in "$WORK/syn.bin" repeat 10000000 2>&1 |
    sed -n 's/.*duration (average): \([0-9]*\)ns.*/\1/p'
}

nft_rules() {  # CASE
  ip netns exec "$NODE" nft delete table inet sluicebench 2> /dev/null || true
  [[ -z ${1:-} ]] && return 0
  local rule
  if [[ $1 == denied ]]; then
    rule="ip saddr $DENIED tcp dport 8080 counter drop"
  else
    rule="tcp dport 8080 tcp flags & (syn | ack) == syn meter flood { ip saddr limit rate over $RATE/second burst $RATE packets } counter drop"
  fi
  ip netns exec "$NODE" nft -f - << NFT
table inet sluicebench {
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    $rule
  }
}
NFT
}

for delivery in $DELIVERIES; do
  topology "$delivery"
  for pass in $(seq "$PASSES"); do
    ip -n "$NODE" link set dev vn xdpdrv obj "$WORK/xdp_drop.bpf.o" sec xdp
    measure floor denied $DENIED
    ip -n "$NODE" link set dev vn xdpdrv off
    echo "$delivery pass $pass: $(tail -1 "$WORK/runs")" >&2
    for mech in xdp nftables none; do
      for case in denied flood; do
        [[ $mech == none && $case == flood ]] && continue  # the same packets as "denied" to TCP
        src=$([[ $case == denied ]] && echo $DENIED || echo $FLOOD)
        if [[ $mech == xdp ]]; then
          start_agent --xdp-interfaces vn --xdp-mode native --deny-source-ranges sluice-system/deny \
            --syn-rate-per-source "$RATE" --syn-burst "$RATE"
        else
          start_agent
          nft_rules "$([[ $mech == nftables ]] && echo "$case")"
        fi
        measure "$mech" "$case" "$src"
        if [[ $mech == xdp && $delivery == "${DELIVERIES%% *}" ]]; then
          echo "{\"mechanism\": \"xdp-prog-run\", \"case\": \"$case\", \"ns\": $(prog_run "$src")}" >> "$WORK/prog"
        fi
        stop_agent
        nft_rules ""
        echo "$delivery pass $pass: $(tail -1 "$WORK/runs")" >&2
      done
    done
  done
done

mkdir -p "$here/results"
python3 - "$WORK/runs" "$PACKETS" "$PASSES" "$WORK/prog" << 'PY' | tee "$here/results/xdp-latest.md"
import json, statistics, sys
all_runs = [json.loads(l) for l in open(sys.argv[1])]
all_prog = [json.loads(l) for l in open(sys.argv[4])]
packets, passes = sys.argv[2], sys.argv[3]
TITLES = {"skb": "skb delivery (the sender's skb goes straight into the node's veth)",
          "frame": "frame delivery (raw XDP frames redirected into the node's veth, as from a NIC)"}


def report(delivery, runs):
    for r in runs:
        r["total_ns"] = 1e9 * (r["sender_cpu_s"] + r["ksoftirqd_s"] + r["agent_s"]) / r["sent"]
    floor = statistics.median(r["total_ns"] for r in runs if r["mechanism"] == "floor")
    for r in runs:
        r["node_ns_per_packet"] = r["total_ns"] - floor
    print(f"### {TITLES.get(delivery, delivery)}\n")
    print(f"{packets} SYNs per run, {passes} passes, interleaved; the median run per row (by ns "
          f"above the floor). Floor (bare XDP_DROP on the node end; sender and delivery): "
          f"{floor:.0f} ns per packet.\n")
    print("| case | mechanism | sent kpps | total ns per packet | ns above the floor | packets per CPU-s above the floor | dropped | above-floor ns over passes |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    rows, med, med_total = {}, {}, {}
    for r in runs:
        if r["mechanism"] != "floor":
            rows.setdefault((r["case"], r["mechanism"]), []).append(r)
    order = ["xdp", "nftables", "none"]
    for (case, mech), rs in sorted(rows.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
        rs.sort(key=lambda r: r["node_ns_per_packet"])
        m = rs[len(rs) // 2]
        med[(case, mech)] = m["node_ns_per_packet"]
        med_total[(case, mech)] = m["total_ns"]
        ns = m["node_ns_per_packet"]
        print(f"| {case} | {mech} | {m['sent'] / m['send_s'] / 1e3:.0f} | {m['total_ns']:.0f} | "
              f"{ns:.0f} | {f'{1e3 / ns:.2f} M' if ns > 0 else 'at or below the floor'} | "
              f"{100 * m['dropped'] / m['sent']:.1f}% | "
              f"{rs[0]['node_ns_per_packet']:.0f}–{rs[-1]['node_ns_per_packet']:.0f} |")
    print()
    for case in ("denied", "flood"):
        x, n = med.get((case, "xdp")), med.get((case, "nftables"))
        if x is not None and n is not None:
            above = f"{n / x:.2f}×" if x > 0 and n > 0 else "n/a (at or below the floor)"
            print(f"- {case}: nftables ÷ XDP, ns above the floor = {above} (XDP's packets per "
                  "CPU-second relative to nftables'); on totals: "
                  f"{med_total[(case, 'nftables')] / med_total[(case, 'xdp')]:.2f}×")
    x, u = med.get(("denied", "xdp")), med.get(("denied", "none"))
    if x and u and x > 0:
        print(f"- denied: no filter ns ÷ XDP ns = {u / x:.2f}×")
    print()


for delivery in dict.fromkeys(r.get("delivery", "skb") for r in all_runs):
    report(delivery, [r for r in all_runs if r.get("delivery", "skb") == delivery])
for case, what in (("denied", "a denied SYN"), ("flood", "a SYN over its source's limit")):
    prog = [p["ns"] for p in all_prog if p.get("case", "denied") == case]
    if prog:
        ns = statistics.median(prog)
        print(f"- The XDP program alone on {what} (BPF_PROG_TEST_RUN, 1e7 repeats): {ns:.0f} ns "
              f"median ({min(prog)}–{max(prog)}), i.e. {1e3 / ns:.1f} M packets per CPU-second.")
PY
cat "$WORK/runs" "$WORK/prog" > "$here/results/xdp-latest.jsonl"

#!/usr/bin/env bash
# TCP-route benchmark of the XDP L4 fast path (docs/l4-fast-path.md) against the agent's relay
# (copy, pipe, sockmap) and HAProxy in mode tcp, on one routed veth topology:
#
#   namespace X: flowbench (client 10.81.0.2 on cl0, server 10.82.0.10:9000 on b0)
#        cl0 ──── n0 10.81.0.1   node namespace   10.82.0.1 n1 ──── b0
#   (XDP_PASS on cl0 and b0; TX checksum offload off on both: see the veth caveats)
#
# The client connects to the TCP route 10.81.0.1:15432; the node forwards (xdp) or relays (the
# rest) to 10.82.0.10:9000, which lives back in X on the other veth, so one flowbench process,
# one clock and one /proc/stat bracket cover the whole path. Workloads per mode: bulk
# (BENCH_BULK_BYTES up) and msgs (BENCH_MSG_CONNS connections ping-ponging 100-byte messages for
# BENCH_MSG_SECONDS). CPU is the whole machine's (softirq included: XDP runs there); the
# "excl. other" column removes processes outside the benchmark (builds next door).
#
#   sudo bash bench/l4.sh BUILD_DIR            # prints one JSON line per run and a table
# Environment: BENCH_MODES (default "xdp copy pipe sockmap haproxy"), BENCH_BULK_BYTES (1G),
# BENCH_MSG_CONNS (200), BENCH_MSG_SECONDS (5), BENCH_REPEAT (1).
set -uo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
REPO=$(cd "$(dirname "$0")/.." && pwd)
AGENT=$BUILD/userspace/app/ingress-agent
FLOWBENCH=$BUILD/bench/sluice-flowbench
PASS_OBJ=$BUILD/tests/bpf/skel/xdp_pass.bpf.o
TRAFFIC=$REPO/tests/bpf/l4_traffic.py
MODES=${BENCH_MODES:-xdp copy pipe sockmap haproxy}
BULK=${BENCH_BULK_BYTES:-1G}
CONNS=${BENCH_MSG_CONNS:-200}
SECS=${BENCH_MSG_SECONDS:-5}
REPEAT=${BENCH_REPEAT:-1}
[[ $(id -u) == 0 ]] || { echo "needs root"; exit 1; }
id=$$
X=sluice-l4bx-$id
ND=sluice-l4bn-$id
PIN=/sys/fs/bpf/sluice-l4-bench-$id
DIR=$(mktemp -d)
OUTF=${BENCH_OUT:-$DIR/runs.jsonl}
proxy_pid=

cleanup() {
  [[ -n $proxy_pid ]] && kill "$proxy_pid" 2> /dev/null && wait "$proxy_pid" 2> /dev/null
  ip netns del "$X" 2> /dev/null
  ip netns del "$ND" 2> /dev/null
  rm -rf "$PIN"
}
trap cleanup EXIT

ip netns add "$X" && ip netns add "$ND" || exit 1
ip link add cl0 netns "$X" type veth peer name n0 netns "$ND"
ip link add b0 netns "$X" type veth peer name n1 netns "$ND"
ip -n "$X" addr add 10.81.0.2/24 dev cl0
ip -n "$X" addr add 10.82.0.10/24 dev b0
ip -n "$ND" addr add 10.81.0.1/24 dev n0
ip -n "$ND" addr add 10.82.0.1/24 dev n1
for d in cl0 b0 lo; do ip -n "$X" link set "$d" up; done
for d in n0 n1 lo; do ip -n "$ND" link set "$d" up; done
ip netns exec "$ND" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$X" python3 "$TRAFFIC" txoff cl0
ip netns exec "$X" python3 "$TRAFFIC" txoff b0
ip -n "$X" link set dev cl0 xdpdrv obj "$PASS_OBJ" sec xdp
ip -n "$X" link set dev b0 xdpdrv obj "$PASS_OBJ" sec xdp
mac() { ip -n "$1" -o link show dev "$2" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2; }
ip -n "$ND" neigh replace 10.82.0.10 lladdr "$(mac "$X" b0)" dev n1 nud permanent
ip -n "$ND" neigh replace 10.81.0.2 lladdr "$(mac "$X" cl0)" dev n0 nud permanent
ip -n "$X" neigh replace 10.81.0.1 lladdr "$(mac "$ND" n0)" dev cl0 nud permanent
ip -n "$X" neigh replace 10.82.0.1 lladdr "$(mac "$ND" n1)" dev b0 nud permanent

mkdir -p "$DIR/m"
cat > "$DIR/m/all.yaml" << 'YAML'
apiVersion: v1
kind: ConfigMap
metadata: {name: sluice-tcp-services, namespace: sluice-system}
data: {"15432": "db/sink:9000"}
---
apiVersion: v1
kind: Service
metadata: {name: sink, namespace: db}
spec: {type: ClusterIP, ports: [{port: 9000, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: sink-1, namespace: db, labels: {kubernetes.io/service-name: sink}}
addressType: IPv4
endpoints: [{addresses: [10.82.0.10], conditions: {ready: true}}]
ports: [{port: 9000, protocol: TCP}]
YAML
cat > "$DIR/haproxy.cfg" << 'CFG'
global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen route
  bind 10.81.0.1:15432
  server sink 10.82.0.10:9000
CFG

start_proxy() {  # MODE
  local args=(--manifests "$DIR/m" --listen-http 10.81.0.1:8080 --admin 127.0.0.1:10254
    --bpf-pin-dir "$PIN" --xdp-interfaces n0,n1 --xdp-mode native --workers 1
    --tcp-services sluice-system/sluice-tcp-services --update-status=false)
  case $1 in
    xdp) args+=(--l4-fast-path auto --splice copy) ;;
    copy | pipe | sockmap) args+=(--l4-fast-path off --splice "$1" --splice-flow-budget 1073741824) ;;
    haproxy)
      nsenter --net=/run/netns/"$ND" haproxy -f "$DIR/haproxy.cfg" > "$DIR/haproxy.log" 2>&1 &
      proxy_pid=$!
      sleep 1
      return
      ;;
  esac
  nsenter --net=/run/netns/"$ND" "$AGENT" "${args[@]}" > "$DIR/agent-$1.log" 2>&1 &
  proxy_pid=$!
  for _ in $(seq 100); do
    grep -q "serving HTTP" "$DIR/agent-$1.log" && break
    sleep 0.1
  done
  sleep 1  # the TCP-route listener and the L4 maps follow the first snapshot
}

stop_proxy() {
  kill "$proxy_pid" 2> /dev/null
  wait "$proxy_pid" 2> /dev/null
  proxy_pid=
  rm -rf "$PIN"
}

for r in $(seq "$REPEAT"); do
  for mode in $MODES; do
    start_proxy "$mode"
    common=(--listen 10.82.0.10:9000 --connect 10.81.0.1:15432 --label "$mode" --proxy-pid "$proxy_pid")
    ip netns exec "$X" "$FLOWBENCH" bulk "${common[@]}" --bytes "$BULK" | tee -a "$OUTF"
    ip netns exec "$X" "$FLOWBENCH" msgs "${common[@]}" --conns "$CONNS" --seconds "$SECS" \
      --size 100 | tee -a "$OUTF"
    stop_proxy
  done
done

python3 - "$OUTF" << 'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
rows = {}
for r in runs:
    rows.setdefault(r["label"], {}).setdefault(r["mode"], []).append(r)
print("| mode | bulk MiB/s | CPU s/GiB | CPU s/GiB excl. other | msgs/s | msgs per CPU s | msgs per CPU s excl. other | p99 µs | ok |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for label, m in rows.items():
    b = m.get("bulk", [{}])[-1]
    s = m.get("msgs", [{}])[-1]
    gib = b.get("bytes", 0) / 2**30 or float("nan")
    excl_b = b.get("cpu_seconds_excluding_other_processes", float("nan")) / gib
    excl_s = s.get("messages", 0) / max(s.get("cpu_seconds_excluding_other_processes", float("nan")), 1e-9)
    print(f"| {label} | {b.get('mib_per_s')} | {b.get('cpu_seconds_per_gib')} | {excl_b:.3f} | "
          f"{s.get('messages_per_s')} | {s.get('messages_per_cpu_second')} | {excl_s:.0f} | "
          f"{s.get('rtt_p99_us')} | {b.get('ok')}/{s.get('ok')} |")
PY

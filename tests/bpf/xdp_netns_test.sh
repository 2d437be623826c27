#!/usr/bin/env bash
# The XDP front door end to end: ingress-agent in a network namespace with native XDP on one end
# of a veth pair, clients in a second namespace on the other end, a deny ConfigMap in the
# manifests directory. Checks, each through real connections and the agent's counters:
#   1. a denied source is dropped and counted while an allowed one is served;
#   2. a SYN flood from one source is limited while another source connects;
#   3. ingressctl deny add blocks at once, and the next reconcile removes it;
#   5. a TCP route whose Service has sluice.dev/allow-source-ranges: an allowed source is relayed,
#      another is dropped in XDP (not_allowed);
#   4. the agent killed with SIGKILL leaves the program enforcing; a new agent adopts it
#      (atomic replace, pinned maps reused), and SIGTERM detaches it.
# `ip netns exec` remounts /sys, hiding bpffs: the agent and ingressctl run under nsenter --net.
# Needs root; skips (exit 77) without it or without bpffs.
#   [XDP_NETNS_MODE=generic] bash tests/bpf/xdp_netns_test.sh BUILD_DIR  (default native)
set -uo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
AGENT=$BUILD/userspace/app/ingress-agent
CTL=$BUILD/cli/ingressctl
[[ $(id -u) == 0 ]] || { echo "skip: needs root"; exit 77; }
[[ $(stat -f -c %T /sys/fs/bpf 2>/dev/null) == bpf_fs ]] || { echo "skip: no bpffs"; exit 77; }

id=$$
SRV=sluice-xs-$id
CLI=sluice-xc-$id
PIN=/sys/fs/bpf/sluice-xdp-test-$id
DIR=$(mktemp -d)
agent_pid=
failures=0

db_pid=
cleanup() {
  [[ -n $agent_pid ]] && kill -9 "$agent_pid" 2> /dev/null
  [[ -n $db_pid ]] && kill "$db_pid" 2> /dev/null
  ip netns del "$SRV" 2> /dev/null
  ip netns del "$CLI" 2> /dev/null
  rm -rf "$PIN" "$DIR"
}
trap cleanup EXIT

ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

ip netns add "$SRV" && ip netns add "$CLI" || exit 1
ip link add vs netns "$SRV" type veth peer name vc netns "$CLI" || exit 1
ip -n "$SRV" addr add 10.77.0.1/24 dev vs
for a in 2 3 4; do ip -n "$CLI" addr add 10.77.0.$a/24 dev vc; done
ip -n "$SRV" link set vs up && ip -n "$SRV" link set lo up
ip -n "$CLI" link set vc up && ip -n "$CLI" link set lo up

write_deny() {  # CIDR lines
  cat > "$DIR/deny.yaml.tmp" << YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: deny
  namespace: sluice-system
data:
  ranges: |
    # test list
$(for l in "$@"; do echo "    $l"; done)
    not-a-cidr
YAML
  mv "$DIR/deny.yaml.tmp" "$DIR/deny.yaml"
}
write_deny 10.77.0.2/32
# A TCP route (port 5432) to a one-line server in the server namespace, allowed from .3 only.
cat > "$DIR/tcp.yaml" << YAML
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: default
  annotations:
    sluice.dev/allow-source-ranges: "10.77.0.3/32, bogus"
spec: {ports: [{port: 5432, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: default, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
endpoints: [{addresses: [10.77.0.1]}]
ports: [{port: 15432, protocol: TCP}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: sluice-tcp-services, namespace: sluice-system}
data: {"5432": default/db:5432}
YAML
ip netns exec "$SRV" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.1", 15432)); s.listen(16)
while True:
    c, _ = s.accept(); c.sendall(b"db\n"); c.close()' &
db_pid=$!

start_agent() {
  nsenter --net=/run/netns/"$SRV" "$AGENT" --manifests "$DIR" --listen-http 10.77.0.1:8080 \
    --admin 127.0.0.1:10254 --bpf-pin-dir "$PIN" --xdp-interfaces vs --xdp-mode "${XDP_NETNS_MODE:-native}" \
    --deny-source-ranges sluice-system/deny --syn-rate-per-source 5 --syn-burst 5 \
    --splice copy --update-status=false > "$DIR/agent.log" 2>&1 &
  agent_pid=$!
  for _ in $(seq 100); do
    grep -q "serving HTTP" "$DIR/agent.log" && return 0
    sleep 0.1
  done
  cat "$DIR/agent.log"
  return 1
}

# connect SRC: prints "served" when an HTTP answer comes back within 1 s, else "timeout".
connect() {
  ip netns exec "$CLI" python3 - "$1" << 'PY'
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.settimeout(1.0)
try:
    s.connect(("10.77.0.1", 8080))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    print("served" if s.recv(100).startswith(b"HTTP/1.1") else "bad")
except OSError:
    print("timeout")
PY
}

counter() {  # REASON: the agent-independent count from the pinned stats
  nsenter --net=/run/netns/"$SRV" "$CTL" --pin-dir "$PIN" xdp -o json |
    python3 -c "import json,sys; d=json.load(sys.stdin); print(next(c['packets'] for c in d['counters'] if c['reason']=='$1'))"
}

xdp_prog() { ip -n "$SRV" -d link show dev vs | grep -o 'prog/xdp id [0-9]*' | head -1; }

start_agent || { bad "agent did not start"; exit 1; }
grep -q "not-a-cidr" "$DIR/agent.log" && ok "bad CIDR warned" || bad "no warning for a bad CIDR"
[[ -n $(xdp_prog) ]] && ok "attached: $(xdp_prog)" || bad "no XDP program on vs"

# 1. denied vs allowed
[[ $(connect 10.77.0.3) == served ]] && ok "allowed source served" || bad "allowed source not served"
before=$(counter denied)
[[ $(connect 10.77.0.2) == timeout ]] && ok "denied source dropped" || bad "denied source got through"
after=$(counter denied)
((after > before)) && ok "denied counted ($before -> $after)" || bad "denied not counted"

# 2. SYN flood from 10.77.0.4 (100 connection attempts), while 10.77.0.3 still connects
ip netns exec "$CLI" python3 - << 'PY'
import socket
socks = []
for i in range(100):
    s = socket.socket(); s.setblocking(False); s.bind(("10.77.0.4", 0))
    try: s.connect(("10.77.0.1", 8080))
    except BlockingIOError: pass
    socks.append(s)
PY
limited=$(counter syn_rate)
((limited > 0)) && ok "SYN flood limited ($limited SYNs dropped)" || bad "SYN flood not limited"
[[ $(connect 10.77.0.3) == served ]] && ok "other source connects during the flood" ||
  bad "other source refused during the flood"
nsenter --net=/run/netns/"$SRV" "$CTL" --pin-dir "$PIN" xdp | grep -q "10.77.0.4/32" &&
  ok "flooding source in top sources" || bad "flooding source missing from ingressctl xdp"

# 3. emergency block, then reconcile
nsenter --net=/run/netns/"$SRV" "$CTL" --pin-dir "$PIN" deny add 10.77.0.3 > /dev/null
[[ $(connect 10.77.0.3) == timeout ]] && ok "deny add blocks" || bad "deny add did not block"
write_deny 10.77.0.2/32 "# touched"
for _ in $(seq 50); do
  nsenter --net=/run/netns/"$SRV" "$CTL" --pin-dir "$PIN" deny list | grep -q 10.77.0.3 || break
  sleep 0.1
done
[[ $(connect 10.77.0.3) == served ]] && ok "reconcile removed the emergency entry" ||
  bad "emergency entry outlived the reconcile"

# 5. a TCP route's allow list, in XDP
tcp_route() {  # SRC: "db" when relayed to the server, else "timeout"
  ip netns exec "$CLI" python3 - "$1" << 'PY'
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.settimeout(1.0)
try:
    s.connect(("10.77.0.1", 5432))
    print(s.recv(10).decode().strip() or "empty")
except OSError:
    print("timeout")
PY
}
[[ $(tcp_route 10.77.0.3) == db ]] && ok "allowed source relayed on the TCP route" ||
  bad "allowed source not relayed on the TCP route"
before=$(counter not_allowed)
[[ $(tcp_route 10.77.0.4) == timeout ]] && ok "other source dropped on the TCP route" ||
  bad "a source outside the route's allow list got through"
(($(counter not_allowed) > before)) && ok "not_allowed counted" || bad "not_allowed not counted"
grep -q 'Service default/db: annotation sluice.dev/allow-source-ranges: bad CIDR "bogus"' \
  "$DIR/agent.log" && ok "bad range warned, naming the Service" || bad "no warning for bogus"

# 4. restart without a gap, then a clean detach
kill -9 "$agent_pid"; wait "$agent_pid" 2> /dev/null; agent_pid=
prog_before=$(xdp_prog)
[[ -n $prog_before ]] && ok "program stays after SIGKILL" || bad "program gone after SIGKILL"
before=$(counter denied)
[[ $(connect 10.77.0.2) == timeout ]] && ok "denied while no agent runs" || bad "gap in enforcement"
((  $(counter denied) > before )) && ok "dropped by the orphaned program" || bad "not counted"
start_agent || { bad "agent did not restart"; exit 1; }
[[ -n $(xdp_prog) && $(xdp_prog) != "$prog_before" ]] && ok "new agent replaced the program" ||
  bad "program not replaced ($(xdp_prog))"
[[ $(connect 10.77.0.2) == timeout ]] && ok "denied after restart" || bad "deny lost on restart"
kill -TERM "$agent_pid"; wait "$agent_pid" 2> /dev/null; agent_pid=
[[ -z $(xdp_prog) ]] && ok "detached on SIGTERM" || bad "still attached after SIGTERM"

echo "xdp netns: $failures failure(s)"
exit $((failures > 0))

#!/usr/bin/env bash
# The XDP SYN-cookie handshake end to end: ingress-agent --xdp-syn-proxy in a network namespace
# with native XDP on one end of a veth pair, a client namespace on the other end (running
# xdp_pass.bpf.o natively: a veth delivers XDP_TX frames only when its peer runs XDP).
# The server namespace has net.core.somaxconn=4, so a few half-open connections fill the
# listener's SYN queue. Checks, each through real connections and counters:
#   1. without pressure the kernel answers SYNs (no cookie from XDP);
#   2. a spoofed SYN flood (raw socket, a source nobody answers for) fills the SYN queue and the
#      kernel overflows (TcpExtSyncookiesSent);
#   3. a real client then connects: the SYN-ACK comes from XDP (cookie_sent moves, the kernel's
#      SyncookiesSent does not, the connection has none of the options the kernel would have
#      echoed: timestamps, SACK, window scaling), its ACK passes the XDP check (cookie_valid),
#      the kernel accepts the cookie (TcpExtSyncookiesRecv) and an HTTP request and its
#      response cross the connection;
#   4. an ACK with a wrong cookie is dropped in XDP (cookie_invalid).
# Needs root, bpffs and kernel 6.0+ (raw cookie helpers); skips (exit 77) otherwise.
#   bash tests/bpf/xdp_synproxy_test.sh BUILD_DIR
set -uo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
AGENT=$BUILD/userspace/app/ingress-agent
CTL=$BUILD/cli/ingressctl
PASS_OBJ=$BUILD/tests/bpf/skel/xdp_pass.bpf.o
[[ $(id -u) == 0 ]] || { echo "skip: needs root"; exit 77; }
[[ $(stat -f -c %T /sys/fs/bpf 2>/dev/null) == bpf_fs ]] || { echo "skip: no bpffs"; exit 77; }
[[ -f $PASS_OBJ ]] || { echo "FAIL: $PASS_OBJ missing (ninja test_bpf_xdp)"; exit 1; }

id=$$
SRV=sluice-ss-$id
CLI=sluice-sc-$id
PIN=/sys/fs/bpf/sluice-synproxy-test-$id
DIR=$(mktemp -d)
agent_pid=
failures=0

cleanup() {
  [[ -n $agent_pid ]] && kill -9 "$agent_pid" 2> /dev/null
  ip netns del "$SRV" 2> /dev/null
  ip netns del "$CLI" 2> /dev/null
  rm -rf "$PIN" "$DIR"
}
trap cleanup EXIT

ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

ip netns add "$SRV" && ip netns add "$CLI" || exit 1
ip link add vs netns "$SRV" type veth peer name vc netns "$CLI" || exit 1
ip -n "$SRV" addr add 10.78.0.1/24 dev vs
ip -n "$CLI" addr add 10.78.0.3/24 dev vc
ip -n "$SRV" link set vs up && ip -n "$SRV" link set lo up
ip -n "$CLI" link set vc up && ip -n "$CLI" link set lo up
ip netns exec "$SRV" sysctl -qw net.core.somaxconn=4 net.ipv4.tcp_syncookies=1
ip -n "$CLI" link set dev vc xdpdrv obj "$PASS_OBJ" sec xdp ||
  { echo "FAIL: cannot attach xdp_pass to the client end"; exit 1; }

nsenter --net=/run/netns/"$SRV" "$AGENT" --manifests "$DIR" --listen-http 10.78.0.1:8080 \
  --admin 127.0.0.1:10254 --bpf-pin-dir "$PIN" --xdp-interfaces vs --xdp-mode native \
  --xdp-syn-proxy=true --workers 1 --splice copy --update-status=false > "$DIR/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do
  grep -q "serving HTTP" "$DIR/agent.log" && break
  sleep 0.1
done
grep -q "serving HTTP" "$DIR/agent.log" || { cat "$DIR/agent.log"; bad "agent did not start"; exit 1; }
if grep -q "no raw SYN-cookie helpers" "$DIR/agent.log"; then
  echo "skip: this kernel has no raw SYN-cookie helpers for XDP (6.0+)"
  exit 77
fi
grep -q "SYN cookies" "$DIR/agent.log" && ok "synproxy program attached" ||
  { cat "$DIR/agent.log"; bad "agent runs without the synproxy program"; }

counter() {  # REASON: from the pinned stats
  nsenter --net=/run/netns/"$SRV" "$CTL" --pin-dir "$PIN" xdp -o json |
    python3 -c "import json,sys; d=json.load(sys.stdin); print(next(c['packets'] for c in d['counters'] if c['reason']=='$1'))"
}
kstat() {  # TcpExt counter of the server namespace
  ip netns exec "$SRV" nstat -az "$1" | awk -v n="$1" '$1 == n {print $2}'
}

# connect: one HTTP exchange from 10.78.0.3; prints "served OPTIONS" (tcpi_options of the
# client's socket) or "timeout".
connect() {
  ip netns exec "$CLI" python3 - << 'PY'
import socket
s = socket.socket()
s.settimeout(3.0)
try:
    s.connect(("10.78.0.1", 8080))
    opts = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[5]
    s.sendall(b"GET /cookie HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    print(("served %d" % opts) if data.startswith(b"HTTP/1.1 ") and b"\r\n\r\n" in data else "bad")
except OSError as e:
    print("timeout", e)
PY
}

# raw FLAGS SRC SPORT SEQ ACK [COUNT]: hand-made TCP segments to 10.78.0.1:8080.
raw() {
  ip netns exec "$CLI" python3 - "$@" << 'PY'
import socket, struct, sys
flags, src, sport, seq, ack = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
count = int(sys.argv[6]) if len(sys.argv) > 6 else 1
bits = {"S": 0x02, "A": 0x10}[flags]
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
sa, da = socket.inet_aton(src), socket.inet_aton("10.78.0.1")
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(count):
    opt = b"\x02\x04\x05\xb4" if bits == 0x02 else b""
    hl = (20 + len(opt)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport + i, 8080, seq, ack, hl << 4, bits, 64240, 0, 0) + opt
    c = csum(sa + da + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i, 0x4000, 64, 6, 0, sa, da)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    r.sendto(ip + tcp, ("10.78.0.1", 0))
PY
}

# 1. no pressure: the kernel's business
reply=$(connect)
[[ $reply == served* ]] && ok "served without pressure" || bad "not served without pressure: $reply"
# The discriminator of step 3: the kernel's SYN-ACK echoes the client's options.
[[ $reply == served* && $reply != "served 0" ]] && ok "kernel handshake has TCP options ($reply)" ||
  bad "no TCP options on a kernel handshake ($reply)"
[[ $(counter cookie_sent) == 0 ]] && ok "no XDP cookie without pressure" ||
  bad "XDP sent cookies with room in the SYN queue ($(counter cookie_sent))"

# 2. fill the SYN queue from a source nobody answers for
raw S 10.78.0.99 20000 7 0 32
sleep 0.2
ksent=$(kstat TcpExtSyncookiesSent)
((ksent > 0)) && ok "SYN queue overflowed ($ksent kernel cookies)" ||
  bad "the flood did not overflow the SYN queue"

# 3. a real client during the flood
sent=$(counter cookie_sent) valid=$(counter cookie_valid) krecv=$(kstat TcpExtSyncookiesRecv)
ksent=$(kstat TcpExtSyncookiesSent)
reply=$(connect)
[[ $reply == served* ]] && ok "served through a cookie: $reply" || bad "not served under pressure: $reply"
[[ $reply == "served 0" ]] && ok "no TCP options: the SYN-ACK was XDP's (MSS only)" ||
  bad "the connection has TCP options ($reply): the kernel answered the SYN"
(($(counter cookie_sent) > sent)) && ok "cookie_sent $sent -> $(counter cookie_sent)" ||
  bad "XDP sent no cookie"
(($(counter cookie_valid) > valid)) && ok "cookie_valid $valid -> $(counter cookie_valid)" ||
  bad "no valid cookie ACK seen by XDP"
[[ $(kstat TcpExtSyncookiesSent) == "$ksent" ]] && ok "the kernel sent no cookie for it" ||
  bad "the kernel sent cookies meanwhile ($ksent -> $(kstat TcpExtSyncookiesSent))"
(($(kstat TcpExtSyncookiesRecv) > krecv)) && ok "the kernel accepted the cookie ACK" ||
  bad "TcpExtSyncookiesRecv did not move"

# 4. a forged ACK
invalid=$(counter cookie_invalid)
raw A 10.78.0.3 31000 12345 424242
sleep 0.2
(($(counter cookie_invalid) > invalid)) && ok "a wrong cookie is dropped (cookie_invalid)" ||
  bad "a wrong cookie was not dropped"

kill -TERM "$agent_pid"; wait "$agent_pid" 2> /dev/null; agent_pid=
echo "xdp synproxy: $failures failure(s)"
exit $((failures > 0))

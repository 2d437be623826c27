#!/usr/bin/env bash
# The DaemonSet's image, built by scripts/build-image.sh and run the way a container runtime runs
# it, without one: the layer unpacked from the OCI archive is the root, the agent is PID 1 of a
# new PID namespace, and the preStop hook enters that namespace and root as the kubelet's exec
# would. Checks:
#   1. the archive is a valid OCI layout (every digest), tagged as k8s/base/daemonset.yaml says;
#   2. the image holds the two binaries, the Debian copyright of every package in it, no shell;
#   3. the agent starts from it as PID 1 and routes a request to a backend on loopback;
#   4. the preStop hook (`ingress-agent --wait-shutdown`) fails /readyz while the agent keeps
#      serving through --shutdown-delay, and the agent then drains and exits 0.
# Prints "image: N passed, M failed".   tests/image/run.sh BUILD_DIR
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(realpath "${1:?usage: run.sh BUILD_DIR}")
WORK=$(mktemp -d /tmp/sluice-image-test.XXXXXX)
TIER=image
source "$ROOT/tests/tier.sh"
pids=()
cleanup() {
  [[ -n ${agent:-} ]] && kill -9 "$agent" 2>/dev/null  # the agent itself, not unshare
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  umount "$WORK/root/proc" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! bash "$ROOT/scripts/build-image.sh" "$BUILD" "$WORK/image.tar" >"$WORK/build.log" 2>&1; then
  cat "$WORK/build.log"; failed=1; summary
fi
want_ref=$(sed -n 's/^ *image: *//p' "$ROOT/k8s/base/daemonset.yaml" | head -1)
check "OCI layout valid, tagged $want_ref" \
  bash -c "[[ \$(python3 '$ROOT/scripts/oci-image.py' --verify '$WORK/image.tar') == '$want_ref' ]]"

# Unpack the layer the manifest names: what a runtime would run.
mkdir -p "$WORK/oci" "$WORK/root"
tar -xf "$WORK/image.tar" -C "$WORK/oci"
layer=$(python3 -c 'import json,sys
d=sys.argv[1]; idx=json.load(open(d+"/index.json"))
m=json.load(open(d+"/blobs/sha256/"+idx["manifests"][0]["digest"][7:]))
print(d+"/blobs/sha256/"+m["layers"][0]["digest"][7:])' "$WORK/oci")
tar -xzf "$layer" -C "$WORK/root"
R=$WORK/root
check "binaries in /usr/local/bin" test -x "$R/usr/local/bin/ingress-agent" -a -x "$R/usr/local/bin/ingressctl"
check "no shell in the image" test ! -e "$R/bin/sh" -a ! -e "$R/usr/bin/sh"
check "a copyright file for every package" bash -c "
  for d in '$R'/usr/share/doc/*/; do [[ -f \$d/copyright ]] || { echo \"  missing \$d\"; exit 1; }; done
  [[ \$(ls '$R/usr/share/doc' | wc -l) -ge 5 ]]"

BPORT=$(free_port); HPORT=$(free_port); APORT=$(free_port)
python3 "$ROOT/tests/echo/echo_backend.py" --name web --listen "127.0.0.2:$BPORT" >/dev/null 2>&1 &
pids+=($!)
mkdir -p "$R/etc/sluice"
cat >"$R/etc/sluice/demo.yaml" <<Y
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: sluice}
spec: {controller: sluice.dev/ingress}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: $BPORT, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: $BPORT, protocol: TCP}]
endpoints: [{addresses: ["127.0.0.2"], conditions: {ready: true}}]
---
Y
ingress_yaml web / >>"$R/etc/sluice/demo.yaml"

# PID 1 of a new PID namespace, in its own mount namespace with its /proc, rooted in the layer.
unshare --pid --fork --kill-child --mount --propagation private /bin/sh -c \
  'r=$1; shift; mount -t proc proc "$r/proc" && exec chroot "$r" /usr/local/bin/ingress-agent "$@"' \
  sh "$R" --manifests /etc/sluice --listen-http "127.0.0.1:$HPORT" --admin "127.0.0.1:$APORT" \
  --splice=copy --shutdown-delay 1500ms --drain-timeout 5s >"$WORK/agent.log" 2>&1 &
runner=$!
pids+=($runner)
readyz() { curl -s -m 1 "http://127.0.0.1:$APORT/readyz"; }
get() { served_by "$HPORT" /x; }
check "agent ready from the image" eventually ready readyz
agent=$(pgrep -f "^/usr/local/bin/ingress-agent --manifests /etc/sluice --listen-http 127.0.0.1:$HPORT" | head -1)
check "agent is PID 1 in its namespace" bash -c "grep -Eq '^NSpid:\s+$agent\s+1$' /proc/${agent:-0}/status"
check "routes a request" eventually web get

# The preStop hook, entered into the agent's PID namespace, mounts and root (as exec would).
start=$(date +%s%N)
(nsenter -t "$agent" -p -m -r /usr/local/bin/ingress-agent --wait-shutdown \
  --shutdown-delay 1500ms --drain-timeout 5s >"$WORK/hook.log" 2>&1; exit $?) &
hook=$!
check "preStop: /readyz fails at once" eventually "shutting down" readyz
check "preStop: still serving during the delay" eventually web get
# When PID 1 exits the kernel ends the hook too (137), as in a pod; either way only after the drain.
# Bounded: a broken drain must fail this tier, not hang the test command.
wait_bounded() {  # pid, seconds; the exit status, or 124 after the limit
  local pid=$1 i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return; }
    sleep 0.1
  done
  return 124
}
wait_bounded "$hook" 15; hook_rc=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "preStop: returned after the delay and drain (${elapsed_ms} ms, rc $hook_rc)" \
  bash -c "[[ $elapsed_ms -ge 1400 && ( $hook_rc == 0 || $hook_rc == 137 ) ]]"
wait_bounded "$runner" 10; agent_rc=$?
check "agent drained and exited 0" test "$agent_rc" = 0
[[ $agent_rc == 0 ]] || cat "$WORK/agent.log"
summary

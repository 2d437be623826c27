#!/usr/bin/env bash
# Agent smoke test: ingress-agent on the demo manifests (examples/demo) with the echo backends
# scripts/demo.sh starts, once per splice mode. Moves SLUICE_KERNELS_MIB MiB (default 16; TCG is
# slow) through an Upgrade tunnel and through the demo's TCP route (port 9000) with SHA-256
# checks, and reads `ingressctl status` and `flows` while the tunnel is open.
#   caps:       exactly the DaemonSet's capabilities (root would add none the agent uses; the
#               bpf, verify, xdp and cli groups still run as root too). --splice=sockmap must
#               splice with sockmap; --splice=auto uses its adaptive relay and still loads the
#               datapath, which status must show.
#   noperfmon:  the datapath cannot load; the agent must fall back to splice(2), serve the same
#               bytes, and say why consistently.
# variants: caps noperfmon
set -euo pipefail
source "$SRC/tests/kernels/lib.sh"

MIB=${SLUICE_KERNELS_MIB:-16}
ADMIN=127.0.0.1:10254
AGENT=$BUILD/userspace/app/ingress-agent
CTL=$BUILD/cli/ingressctl
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

start_backends() {  # the demo's "pods" (examples/demo/services.yaml), as scripts/demo.sh runs them
  local spec
  for spec in web:9081 web:9082 api:9083; do
    python3 "$SRC/tests/echo/echo_backend.py" --name "${spec%%:*}" --listen "127.0.0.1:${spec##*:}" \
      > /dev/null 2>&1 &
    pids+=($!)
  done
  local port
  for port in 9081 9082 9083; do
    wait_for 60 curl -s -o /dev/null "http://127.0.0.1:$port/" || return 1
  done
}

served_by_web() {
  curl -s -m 10 -H 'Host: demo.local' http://127.0.0.1:8080/ | grep -q '"service": "web"'
}

stream() {  # KIND PORT MIB [ARGS...]: stream_check.py (prints its own ok/FAIL lines)
  python3 "$SRC/tests/kernels/stream_check.py" "$@"
}

ctl() { "$CTL" --pin-dir "$pin" --admin "$ADMIN" "$@"; }

# Opens the tunnel, looks at it with ingressctl while it holds, then lets it finish.
tunnel_with_look() {
  rm -f "$tmp/release"
  stream upgrade 8080 "$MIB" --hold-file "$tmp/release" > "$tmp/upgrade.out" 2>&1 &
  local client=$!
  wait_for 300 grep -q -e HOLDING -e FAIL "$tmp/upgrade.out" || true
  ctl status -o json > "$tmp/status.json" 2> "$tmp/status.err" || true
  ctl flows -o json > "$tmp/flows.json" 2> "$tmp/flows.err" || true
  ctl status > "$tmp/status.txt" 2>&1 || true
  touch "$tmp/release"
  wait "$client" || true
  cat "$tmp/status.txt" "$tmp/status.err" "$tmp/flows.err" >> "$LOG"
}

stops_on_sigterm() {
  kill -TERM "$agent"
  local rc=0
  timeout 30 tail --pid="$agent" -f /dev/null || { echo "agent still running 30 s after SIGTERM"; return 1; }
  wait "$agent" || rc=$?
  [[ $rc == 0 ]] || { echo "agent exited with $(exit_text "$rc")"; return 1; }
}

run_mode() {  # MODE: one agent run
  local mode=$1
  begin_group "agent-${mode}[${VARIANT}]"
  pin=/sys/fs/bpf/sluice-kt-agent-$mode-$$
  tmp=$(mktemp -d)
  "$AGENT" --manifests "$SRC/examples/demo" --splice "$mode" --bpf-pin-dir "$pin" \
    --listen-http 127.0.0.1:8080 --admin "$ADMIN" --workers 1 --drain-timeout 5s \
    --log-level "${SLUICE_KERNELS_AGENT_LOG_LEVEL:-info}" \
    > "$OUT/logs/agent-$mode-$VARIANT.agent.log" 2>&1 &
  agent=$!
  pids+=("$agent")
  check "agent ready" wait_for 120 curl -sf -o /dev/null "http://$ADMIN/readyz"
  curl -s -m 10 "http://$ADMIN/debug/state" > "$tmp/state.json" || true
  check "demo.local/ routed to web" served_by_web
  tunnel_with_look
  check_lines "$tmp/upgrade.out"
  stream tcp 9000 "$MIB" > "$tmp/tcp.out" 2>&1 || true
  check_lines "$tmp/tcp.out"
  ctl status -o json > "$tmp/after.json" 2>> "$LOG" || true
  python3 "$SRC/tests/kernels/agent_checks.py" "$mode" "$VARIANT" "$MIB" "$tmp" > "$tmp/checks.out" 2>&1 || true
  check_lines "$tmp/checks.out"
  # The agent's own account of the run (held, integrity resets, fallbacks), for the log.
  curl -s -m 10 "http://$ADMIN/debug/state" > "$OUT/logs/agent-$mode-$VARIANT.state.json" || true
  check "stops on SIGTERM" stops_on_sigterm
  rm -rf "$pin" "$tmp"
  group_report
}

check_tools() {
  local missing=()
  [[ -x $AGENT ]] || missing+=("$AGENT")
  [[ -x $CTL ]] || missing+=("$CTL")
  command -v curl > /dev/null || missing+=(curl)
  ((${#missing[@]} == 0)) || { report "agent[$VARIANT]" 0 1 0 "missing: ${missing[*]}"; exit 0; }
}

check_tools
if ! start_backends; then
  report "agent[$VARIANT]" 0 1 0 "echo backends did not start"
  exit 0
fi
if [[ $VARIANT == noperfmon ]]; then
  run_mode sockmap
else
  run_mode sockmap
  run_mode auto
fi

#!/usr/bin/env bash
# Installs dependencies, builds the agent, starts the demo backends and runs the agent on the
# manifests in examples/demo/ (Ctrl-C stops everything). As root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build ingress-agent

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# The "pods": the echo backend reports which service answered and what it received.
for spec in web:9081 web:9082 api:9083; do
  python3 tests/echo/echo_backend.py --name "${spec%%:*}" --listen "127.0.0.1:${spec##*:}" >/dev/null &
  pids+=($!)
done

cat <<MSG

Sluice demo: agent on :8080, admin on 127.0.0.1:10254, manifests in examples/demo/ (edit them
live). Try:

  curl -s -H 'Host: demo.local' http://127.0.0.1:8080/api/users
  curl -s -H 'Host: demo.local' http://127.0.0.1:8080/
  curl -s -H 'Host: x.apps.demo.local' http://127.0.0.1:8080/anything
  curl -s http://127.0.0.1:10254/debug/state
  curl -s http://127.0.0.1:9000/       # a plain TCP route (examples/demo/tcp-services.yaml)

MSG
./build/userspace/app/ingress-agent --manifests examples/demo "$@" &
pids+=($!)
wait "${pids[-1]}"

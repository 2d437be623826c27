#!/usr/bin/env bash
# TLS termination and kTLS through the real agent on this kernel. Where the tls module loads
# (6.1, 6.12), the agent must enable kTLS for TLS 1.2 connections only and still move bodies both
# ways intact (splice(2) into and out of kTLS sockets); where it does not (5.10, the host), it must
# say once why kTLS is off and serve the same bytes. tls_check.py does the transfers and checks.
# variants: root
set -euo pipefail
source "$SRC/tests/kernels/lib.sh"

# Under TCG every TLS record is emulated crypto: 4 MiB each way is enough to cross many splices.
MIB=${SLUICE_KERNELS_TLS_MIB:-4}
ADMIN=127.0.0.1:10255
AGENT=$BUILD/userspace/app/ingress-agent
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

manifests() {  # DIR: a Service with the echo backend, a TLS Secret made here, an Ingress for it
  local dir=$1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=k.test -addext subjectAltName=DNS:k.test -keyout "$dir/k.key" -out "$dir/k.crt" \
    2> /dev/null
  cat > "$dir/m.yaml" <<YAML
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: sluice}
spec: {controller: sluice.dev/ingress}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: t}
spec: {ports: [{name: http, port: 80, targetPort: 9181}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: t, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
ports: [{name: http, port: 9181, protocol: TCP}]
---
apiVersion: v1
kind: Secret
metadata: {name: k, namespace: t}
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 "$dir/k.crt")
  tls.key: $(base64 -w0 "$dir/k.key")
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: k, namespace: t}
spec:
  ingressClassName: sluice
  tls: [{hosts: [k.test], secretName: k}]
  rules:
  - host: k.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
YAML
  rm -f "$dir/k.key"
}

begin_group "tls[$VARIANT]"
tmp=$(mktemp -d)
# The tls module and the AEAD ciphers it asks the crypto API for (modules.list stages them).
for module in tls gcm ghash_generic ctr chacha20poly1305; do
  modprobe "$module" 2> /dev/null || true
done
python3 "$SRC/tests/echo/echo_backend.py" --name web --listen 127.0.0.1:9181 > /dev/null 2>&1 &
pids+=($!)
manifests "$tmp"
"$AGENT" --manifests "$tmp" --listen-http 127.0.0.1:8081 --listen-https 127.0.0.1:8444 \
  --admin "$ADMIN" --workers 1 --splice pipe --bpf-pin-dir "/sys/fs/bpf/sluice-kt-tls-$$" \
  > "$OUT/logs/tls-$VARIANT.agent.log" 2>&1 &
pids+=($!)
check "agent ready" wait_for 120 curl -sf -o /dev/null "http://$ADMIN/readyz"
check "echo backend up" wait_for 60 curl -s -o /dev/null http://127.0.0.1:9181/
expected=no
grep -q "kTLS: on" "$OUT/logs/tls-$VARIANT.agent.log" && expected=yes
feature ktls "$expected"
said_once() { [[ $(grep -c "kTLS: " "$OUT/logs/tls-$VARIANT.agent.log") == 1 ]]; }
check "the agent says once whether kTLS is on and why" said_once
if [[ -e /sys/module/tls ]]; then
  check "kTLS on where the tls module is loaded" test "$expected" = yes
fi
python3 "$SRC/tests/kernels/tls_check.py" 8444 "$ADMIN" "$expected" "$MIB" > "$tmp/checks.out" 2>&1 || true
check_lines "$tmp/checks.out"
rm -rf "$tmp"
group_report

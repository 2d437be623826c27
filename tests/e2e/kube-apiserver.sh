#!/usr/bin/env bash
# Starts a real kube-apiserver (scripts/build-kube-apiserver.sh) with etcd (Debian's etcd-server)
# on loopback, for the end-to-end tier: self-signed serving cert, a static admin token, a
# service-account key pair. Prints "KUBECONFIG=<path>" when the API server answers /readyz, then
# waits; SIGTERM/SIGINT stops both. Given an existing STATE_DIR it restarts on the same ports,
# certificates, token and etcd data (a restart the agent must converge through); the directory
# is removed on exit only when this run created it.
#
#   tests/e2e/kube-apiserver.sh [STATE_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$("$ROOT/scripts/build-kube-apiserver.sh")
DIR=${1:-$(mktemp -d /tmp/sluice-kube.XXXXXX)}
owned=0
if [[ ! -f $DIR/ports ]]; then
  owned=1
  mkdir -p "$DIR"
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  echo "ETCD_PORT=$(free_port) ETCD_PEER=$(free_port) API_PORT=$(free_port)" >"$DIR/ports"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$DIR/serving.key" -out "$DIR/serving.crt" 2>/dev/null
  openssl genrsa -out "$DIR/sa.key" 2048 2>/dev/null
  openssl rsa -in "$DIR/sa.key" -pubout -out "$DIR/sa.pub" 2>/dev/null
  TOKEN=$(head -c 24 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')
  echo "$TOKEN,admin,admin,system:masters" >"$DIR/tokens.csv"
fi
# shellcheck disable=SC1091
source <(tr ' ' '\n' <"$DIR/ports")
TOKEN=$(cut -d, -f1 "$DIR/tokens.csv")

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ $owned == 1 && -z ${SLUICE_KUBE_KEEP_STATE:-} ]]; then rm -rf "$DIR"; fi
}
trap cleanup EXIT INT TERM

etcd --name e2e --data-dir "$DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER" >"$DIR/etcd.log" 2>&1 &
pids+=($!)

"$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
  --tls-cert-file "$DIR/serving.crt" --tls-private-key-file "$DIR/serving.key" \
  --token-auth-file "$DIR/tokens.csv" --authorization-mode RBAC \
  --service-account-key-file "$DIR/sa.pub" --service-account-signing-key-file "$DIR/sa.key" \
  --service-account-issuer https://kubernetes.default.svc \
  --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true \
  >"$DIR/apiserver.log" 2>&1 &
pids+=($!)

cat >"$DIR/kubeconfig" <<KC
apiVersion: v1
kind: Config
current-context: e2e
clusters:
- name: e2e
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$DIR/serving.crt"}
users:
- name: admin
  user: {token: "$TOKEN"}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
KC
for _ in $(seq 600); do
  if curl -sf --cacert "$DIR/serving.crt" -H "Authorization: Bearer $TOKEN" \
      "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then
    echo "KUBECONFIG=$DIR/kubeconfig"
    echo "KUBECTL=$BIN/kubectl"
    wait -n "${pids[@]}"
    echo "kube-apiserver or etcd exited" >&2
    exit 1
  fi
  sleep 0.1
done
echo "kube-apiserver did not become ready; log: $DIR/apiserver.log" >&2
tail -20 "$DIR/apiserver.log" >&2
exit 1

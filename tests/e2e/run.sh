#!/usr/bin/env bash
# End-to-end tier against a real kube-apiserver + etcd on loopback (tests/e2e/kube-apiserver.sh):
#   1. the deployment manifests pass `kubectl apply --dry-run=server -k k8s/`;
#   2. the agent, given a kubeconfig, routes to a backend on loopback as Ingress, Service and
#      EndpointSlice objects are created, changed (endpoint readiness, path) and deleted, and
#      refuses a link-local endpoint (--allow-endpoint-cidrs admits only loopback);
#   3. the agent holds the leader-election Lease and writes status.loadBalancer of our Ingress,
#      and never of another class's; an Ingress with a bad rule gets one Warning Event, which
#      the ServiceAccount of k8s/base/rbac.yaml may create;
#   4. killing the API server and etcd leaves the agent serving its last good state, and after
#      both restart (same data) the agent converges to changes made since and leads again.
# Prints "e2e: N passed, M failed" and exits non-zero on any failure.
#   tests/e2e/run.sh AGENT_BINARY
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AGENT=${1:?usage: run.sh AGENT_BINARY}
WORK=$(mktemp -d /tmp/sluice-e2e.XXXXXX)
TIER=e2e
source "$ROOT/tests/tier.sh"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  [[ -n ${api_pgid:-} ]] && kill -- -"$api_pgid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$ROOT/scripts/build-kube-apiserver.sh" >/dev/null || { failed=1; summary; }
export SLUICE_KUBE_KEEP_STATE=1  # the restart below reuses the state; $WORK goes on exit
setsid "$ROOT/tests/e2e/kube-apiserver.sh" "$WORK/kube" >"$WORK/kube.out" 2>&1 &
api_pgid=$!
for _ in $(seq 300); do grep -q '^KUBECTL=' "$WORK/kube.out" && break; sleep 0.2; done
export KUBECONFIG=$(sed -n 's/^KUBECONFIG=//p' "$WORK/kube.out")
KUBECTL=$(sed -n 's/^KUBECTL=//p' "$WORK/kube.out")
if [[ -z $KUBECONFIG ]]; then
  cat "$WORK/kube.out"; failed=1; summary
fi
k() { "$KUBECTL" "$@" >>"$WORK/kubectl.log" 2>&1; }

# 1. Manifests: the namespace must exist for a server-side dry run of what lives in it.
check "kubectl apply --dry-run=server -k k8s/" \
  bash -c "'$KUBECTL' apply -f '$ROOT/k8s/base/namespace.yaml' >/dev/null && '$KUBECTL' apply --dry-run=server -k '$ROOT/k8s/' >/dev/null"
check "kubectl apply --dry-run=server -k k8s/namespaced/" \
  bash -c "'$KUBECTL' apply -f '$ROOT/k8s/namespaced/namespace.yaml' >/dev/null && '$KUBECTL' apply --dry-run=server -k '$ROOT/k8s/namespaced/' >/dev/null"
# The one-namespace variant, applied for real (RBAC only): TLS Secrets readable in `apps`, and
# nowhere else. (The cluster-wide ClusterRole is not applied yet at this point.)
check "k8s/namespaced/: the agent may read Secrets in its namespace only" bash -c "
  '$KUBECTL' apply -f '$ROOT/k8s/base/rbac.yaml' -f '$ROOT/k8s/namespaced/rbac.yaml' >/dev/null &&
  as='--as=system:serviceaccount:sluice-system:sluice-agent' &&
  '$KUBECTL' auth can-i watch secrets -n apps \$as >/dev/null &&
  ! '$KUBECTL' auth can-i watch secrets -n default \$as >/dev/null &&
  '$KUBECTL' auth can-i list ingressclasses \$as >/dev/null &&
  '$KUBECTL' delete -f '$ROOT/k8s/namespaced/rbac.yaml' >/dev/null"

BPORT=$(free_port); HPORT=$(free_port); APORT=$(free_port); SPORT=$(free_port)
python3 "$ROOT/tests/echo/echo_backend.py" --name web --listen "127.0.0.2:$BPORT" >/dev/null 2>&1 &
pids+=($!)
python3 "$ROOT/tests/echo/echo_backend.py" --name web2 --listen "127.0.0.3:$BPORT" >/dev/null 2>&1 &
pids+=($!)
# The backends are on loopback, which the API source refuses as endpoints unless allowed.
"$AGENT" --kubeconfig "$KUBECONFIG" --listen-http "127.0.0.1:$HPORT" --admin "127.0.0.1:$APORT" \
  --listen-https "127.0.0.1:$SPORT" \
  --allow-endpoint-cidrs 127.0.0.0/8 \
  --splice=copy --publish-address 192.0.2.10,ingress.demo.local --election-namespace sluice-system \
  --lease-duration 4s --lease-renew-deadline 3s --lease-retry-period 500ms \
  >"$WORK/agent.log" 2>&1 &
pids+=($!)

get() { served_by "$HPORT" "$1"; }
status() { curl -s -m 2 -o /dev/null -w '%{http_code}' -H 'Host: demo.local' "http://127.0.0.1:$HPORT$1"; }
slice() {  # ready flags for 127.0.0.2 and 127.0.0.3
  cat <<Y
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: $BPORT, protocol: TCP}]
endpoints:
- {addresses: ["127.0.0.2"], conditions: {ready: $1}}
- {addresses: ["127.0.0.3"], conditions: {ready: $2}}
Y
}
lb() { "$KUBECTL" get ingress "$1" -o jsonpath='{.status.loadBalancer.ingress[*].ip}/{.status.loadBalancer.ingress[*].hostname}' 2>/dev/null; }
agent_state() { curl -s -m 2 "http://127.0.0.1:$APORT/debug/state" | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["ingress_status"]['"\"$1\""'])
except Exception: print("<none>")'; }
check "agent ready against the API server" eventually 200 \
  curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$APORT/readyz"
k apply -f "$ROOT/k8s/base/ingressclass.yaml"
# Another controller's class and Ingress: the agent must never write its status.
k apply -f - <<Y
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: other}
spec: {controller: example.com/other}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: theirs, namespace: default}
spec:
  ingressClassName: other
  rules:
  - host: theirs.local
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}]}
Y
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]}\n' | k apply -f -
slice true false | k apply -f -
ingress_yaml web / | k apply -f -
check "route created" eventually web get /x
check "agent leads the Lease" eventually True agent_state leader
check "Lease names the agent" eventually "$(agent_state identity)" \
  "$KUBECTL" -n sluice-system get lease sluice-ingress-leader -o 'jsonpath={.spec.holderIdentity}'
check "status written for our class" eventually 192.0.2.10/ingress.demo.local lb web
slice false true | k apply -f -
check "endpoint readiness flipped" eventually web2 get /x
# Outside --allow-endpoint-cidrs, the cloud metadata address is refused as an endpoint.
metric() { curl -s -m 2 "http://127.0.0.1:$APORT/metrics" | sed -n "s/^$1 //p"; }
k apply -f - <<Y
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata: {name: web-meta, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: $BPORT, protocol: TCP}]
endpoints:
- {addresses: ["169.254.169.254"], conditions: {ready: true}}
Y
check "link-local endpoint refused" eventually 1 metric sluice_endpoints_refused
k delete endpointslice web-meta
check "refusal gone with its slice" eventually 0 metric sluice_endpoints_refused
ingress_yaml web /api | k apply -f -
check "path edited: old path 404" eventually 404 status /x
check "path edited: new path routes" eventually web2 get /api/x
ingress_yaml extra /extra Exact | k apply -f -
check "second Ingress created" eventually web2 get /extra
k delete ingress extra
check "Ingress deleted: 404" eventually 404 status /extra
# TLS: a kubernetes.io/tls Secret made by kubectl and an Ingress with spec.tls, served by SNI.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=tls.local \
  -addext subjectAltName=DNS:tls.local -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
k create secret tls tls-local --cert "$WORK/tls.crt" --key "$WORK/tls.key" -n default
rm -f "$WORK/tls.key"
k apply -f - <<Y
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: tls, namespace: default}
spec:
  ingressClassName: sluice
  tls: [{hosts: [tls.local], secretName: tls-local}]
  rules:
  - host: tls.local
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}]}
Y
served_cert() { echo | openssl s_client -connect "127.0.0.1:$SPORT" -servername tls.local 2>/dev/null |
  openssl x509 -noout -fingerprint -sha256 2>/dev/null; }
tls_get() { curl -sk -m 3 --resolve "tls.local:$SPORT:127.0.0.1" "https://tls.local:$SPORT/t" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["service"])' 2>/dev/null; }
check "TLS Secret served by SNI" eventually "$(openssl x509 -noout -fingerprint -sha256 -in "$WORK/tls.crt")" served_cert
check "HTTPS request routed" eventually web2 tls_get
redirect() { curl -s -m 2 -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: tls.local' "http://127.0.0.1:$HPORT/r"; }
check "plain HTTP redirected to https" eventually "308 https://tls.local:$SPORT/r" redirect
k delete ingress tls
check "other class's status untouched" eventually / lb theirs
# A rule no request can match: the leader writes one Warning Event regarding that Ingress.
agent_events() {  # name: "reason uid" of each of the agent's Events regarding Ingress NAME
  "$KUBECTL" get events.v1.events.k8s.io -n default -o json 2>/dev/null | python3 -c 'import json,sys
for e in json.load(sys.stdin)["items"]:
  r = e.get("regarding", {})
  if r.get("kind") == "Ingress" and r.get("name") == sys.argv[1] and e.get("type") == "Warning" \
     and e.get("reportingController") == "sluice.dev/ingress-agent":
    print(e["reason"], r.get("uid"))' "$1"
}
ingress_yaml badrule '/x%zz' | k apply -f -
badrule_uid=$("$KUBECTL" get ingress badrule -o jsonpath='{.metadata.uid}')
check "Warning Event on an Ingress with a bad rule" eventually "InvalidPath $badrule_uid" \
  agent_events badrule
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default, annotations: {touch: "1"}}\nspec: {ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]}\n' | k apply -f -
sleep 1
check "the same warning is not written twice" eventually "InvalidPath $badrule_uid" \
  agent_events badrule
k delete ingress badrule
check "RBAC: the agent's ServiceAccount may create Events, and no more" bash -c "
  '$KUBECTL' apply -f '$ROOT/k8s/base/rbac.yaml' -f '$ROOT/k8s/cluster-rbac.yaml' >/dev/null &&
  as='--as=system:serviceaccount:sluice-system:sluice-agent' &&
  '$KUBECTL' auth can-i create events.events.k8s.io -n default \$as >/dev/null &&
  ! '$KUBECTL' auth can-i patch events.events.k8s.io -n default \$as >/dev/null &&
  ! '$KUBECTL' auth can-i create events -n default \$as >/dev/null"
# 4. The API server and etcd die: the last good state keeps serving.
kill -- -"$api_pgid" 2>/dev/null; api_pgid=
sleep 2
check "API server gone: still serving" eventually web2 get /api/x
k delete ingress web --wait=false || true  # fails: the API server is down
check "agent still alive" kill -0 "${pids[-1]}"
# Both come back on the same data; a change made now must reach the agent.
setsid "$ROOT/tests/e2e/kube-apiserver.sh" "$WORK/kube" >"$WORK/kube2.out" 2>&1 &
api_pgid=$!
for _ in $(seq 300); do grep -q '^KUBECTL=' "$WORK/kube2.out" && break; sleep 0.2; done
check "API server restarted" grep -q '^KUBECTL=' "$WORK/kube2.out"
ingress_yaml web /back | k apply -f -
for _ in $(seq 300); do [[ $(get /back/x) == web2 ]] && break; sleep 0.1; done
check "converged after the restart" eventually web2 get /back/x
check "old path gone after the restart" eventually 404 status /api/x
check "leads again after the restart" eventually True agent_state leader
check "other class's status still untouched" eventually / lb theirs

summary

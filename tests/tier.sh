# Shared helpers of the script tiers (tests/e2e/run.sh, tests/image/run.sh). Source it after
# setting TIER (the label of the "TIER: N passed, M failed" summary line that scripts/test.sh reads).
passed=0 failed=0
check() {  # name, command...: one check, counted and printed
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "$TIER: ok   $name"
  else failed=$((failed + 1)); echo "$TIER: FAIL $name"; fi
}
summary() {  # prints the summary line; exits non-zero on any failure
  echo "$TIER: $passed passed, $failed failed"
  [[ $failed == 0 ]]
  exit $?
}
eventually() {  # expected, command...: polls for 10 s
  local want=$1; shift
  for _ in $(seq 100); do [[ $("$@") == "$want" ]] && return 0; sleep 0.1; done
  echo "  wanted '$want', got '$("$@")'"; return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
served_by() {  # port, path: the echo backend's service name answering demo.local PATH, or <none>
  curl -s -m 2 -H 'Host: demo.local' "http://127.0.0.1:$1$2" | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["service"])
except Exception: print("<none>")'
}
ingress_yaml() {  # name, path[, pathType]: an Ingress of class sluice for demo.local → web:http
  cat <<Y
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: $1, namespace: default}
spec:
  ingressClassName: sluice
  rules:
  - host: demo.local
    http: {paths: [{path: $2, pathType: ${3:-Prefix}, backend: {service: {name: web, port: {name: http}}}}]}
Y
}

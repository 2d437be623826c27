#!/usr/bin/env bash
# Sluice side-by-side HTTP benchmark: sluice vs nginx vs haproxy vs caddy, one shared nginx origin.
#
#   sudo bench/run.sh                          # defaults: 15 s per run, 64 and 1000 connections
#   BENCH_DURATION=10s bench/run.sh            # shorter runs
#
# Environment (all optional):
#   SLUICE_AGENT       path to a built ingress-agent (default: build one in Release)
#   SLUICE_BUILD_DIR   where to build it (default: ${TMPDIR:-/tmp}/sluice-bench-build)
#   BENCH_DURATION     measured wrk duration per run (default 15s)
#   BENCH_WARMUP       unmeasured warm-up before each measured run (default 3s; 0 to skip)
#   BENCH_PROXIES      which proxies, in order (default "sluice nginx haproxy caddy")
#   BENCH_CONNS        client connection counts (default "64 1000")
#   BENCH_SLUICE_ARGS  extra ingress-agent flags (word-split), e.g. "--splice=pipe"
#   BENCH_IDLE         the idle-connections workload: this many idle keep-alive connections held
#                      (bench/tools/idle_holder.py) while wrk puts a light load of BENCH_IDLE_LOAD
#                      connections (default 16) through the proxy; reports the proxy's peak RSS and
#                      KiB per idle connection. Default 10000; 0 skips it
#   BENCH_WRK_THREADS  wrk threads (default 1: wrk is pinned to one core, more threads only contend)
#   BENCH_REPEAT       runs per proxy and connection count, interleaved; the median-req/s run is
#                      reported (default 1)
#   BENCH_SCHED        priority of the proxy, origin and wrk, so that other work on a shared machine
#                      disturbs the runs less: "fifo" (SCHED_FIFO 10, default as root: they preempt
#                      any normal task at once; the kernel's RT throttling still leaves 5% of each
#                      core to others, which shows up as pauses in p99 when a core saturates),
#                      "nice" (nice -20: milder, but wake-ups then wait behind other work) or "off"
#   BENCH_NOISE_PCT    flag a run as noisy when other processes used more than this % of a core
#                      (default 10; 60 under fifo, where other work mostly fills idle gaps)
#   BENCH_SPREAD_PCT   with BENCH_REPEAT > 1, flag a row whose req/s varied across runs by more
#                      than this % of the median (default 15)
#   BENCH_PROXY_CPU    core the proxy is pinned to (default 0)
#   BENCH_CLIENT_CPU   core wrk and the origin are pinned to (default 1)
#   BENCH_DOC          Markdown file whose marked section gets the table (default docs/benchmarks.md)
#   BENCH_PERF         name of one proxy to profile: after its first measured run at each
#                      connection count, one extra (unreported) run under `perf record -g`;
#                      perf-<proxy>-c<conns>.{data,report.txt,flat.txt} land in bench/results/raw/
#   BENCH_RESULTS_DIR  where latest.json and raw/ go (default bench/results; for trial runs)
#   BENCH_KEEP_WORKDIR 1 to keep the temporary directory (configs, logs) for inspection
#
# Everything listens on 127.0.0.1, on ports picked here (outside the ephemeral range). Every process
# this script starts is stopped by pid on exit. This script only orchestrates and samples: each run
# leaves one JSON record in bench/results/raw/runs.jsonl, and bench/report.py turns the records into
# docs/benchmarks.md (marked section) and bench/results/latest.json. Raw wrk outputs stay under
# bench/results/raw/ (gitignored).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

# The exact command, as typed (only the knobs that were set), for the report.
CMD_LINE=""
for v in SLUICE_AGENT BENCH_DURATION BENCH_WARMUP BENCH_PROXIES BENCH_CONNS BENCH_WRK_THREADS \
         BENCH_REPEAT BENCH_PROXY_CPU BENCH_CLIENT_CPU BENCH_SCHED BENCH_PERF BENCH_IDLE \
         BENCH_IDLE_LOAD BENCH_SLUICE_ARGS BENCH_TLS BENCH_TLS_NEW; do
  if [[ -n ${!v:-} ]]; then
    CMD_LINE+="$v=$(printf '%q' "${!v}") "
  fi
done
CMD_LINE+="bench/run.sh${*:+ $*}"

DURATION=${BENCH_DURATION:-15s}
WARMUP=${BENCH_WARMUP:-3s}
# BENCH_TLS=ecdsa|rsa: the same workloads over TLS (one certificate of that key type, made here,
# served by every proxy; Caddy is left out), into docs/benchmarks-tls.md and results/tls-KIND/.
# BENCH_TLS_NEW=1: every request on a new TLS connection, resumed with a session ticket as wrk
# does; BENCH_TLS_NEW=full: the same with tickets off in every proxy, so each is a full handshake
# and CPU per request is CPU per handshake.
TLS=${BENCH_TLS:-}
TLS_NEW=${BENCH_TLS_NEW:-0}
if [[ -n $TLS ]]; then
  PROXIES=${BENCH_PROXIES:-"sluice nginx haproxy"}
else
  PROXIES=${BENCH_PROXIES:-"sluice nginx haproxy caddy"}
fi
CONNS=${BENCH_CONNS:-"64 1000"}
IDLE=${BENCH_IDLE:-10000}
IDLE_LOAD=${BENCH_IDLE_LOAD:-16}
REPEAT=${BENCH_REPEAT:-1}
SPREAD_PCT=${BENCH_SPREAD_PCT:-15}
WRK_THREADS=${BENCH_WRK_THREADS:-1}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
DOC=${BENCH_DOC:-}
PERF_TARGET=${BENCH_PERF:-}
TLS_TAG=${TLS:+tls-$TLS}
[[ -n $TLS && $TLS_NEW == 1 ]] && TLS_TAG+=-new
[[ -n $TLS && $TLS_NEW == full ]] && TLS_TAG+=-full
RESULTS=${BENCH_RESULTS_DIR:-$BENCH_DIR/results${TLS_TAG:+/$TLS_TAG}}
DOC=${DOC:-$REPO/docs/benchmarks${TLS_TAG:+-$TLS_TAG}.md}
RAW=$RESULTS/raw

BENCH_TAG=bench
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
case $TLS in "" | ecdsa | rsa) ;; *) die "BENCH_TLS must be ecdsa or rsa, not '$TLS'" ;; esac

# ---------------------------------------------------------------------------------------------
# Preflight
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found (install it: SLUICE_BENCH=1 scripts/install-deps.sh)"; }
for c in wrk curl taskset ss pgrep awk nginx cmp sed python3; do need "$c"; done
for p in $PROXIES; do
  case $p in
    sluice) ;;
    nginx) need nginx ;;
    haproxy) need haproxy ;;
    caddy) need caddy ;;
    *) die "unknown proxy '$p' in BENCH_PROXIES (known: sluice nginx haproxy caddy)" ;;
  esac
done
[[ -n $PERF_TARGET ]] && need perf
[[ $EUID -eq 0 ]] || log "warning: not root; raising the fd limit (and perf) may fail"
NPROC=$(nproc)
((NPROC >= 2)) || die "need at least 2 cores (proxy on one, client+origin on another); have $NPROC"
((PROXY_CPU < NPROC && CLIENT_CPU < NPROC)) || die "BENCH_PROXY_CPU/BENCH_CLIENT_CPU out of range"

# 1000 client connections need ~2000 fds in the proxy (client + upstream side) and the origin.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= 4096)) || die "open-file limit $(ulimit -n) is too low; need >= 4096"

# Run the benchmark's own processes at high priority: on a shared dev box other work otherwise
# steals the pinned cores. It applies to all proxies alike.
SCHED=${BENCH_SCHED:-$([[ $EUID -eq 0 ]] && echo fifo || echo off)}
set_sched

dur_secs() { # 15s / 1m / 500ms / 15 -> whole seconds (at least 1)
  local d=$1
  case $d in
    *ms) echo $(((${d%ms} + 999) / 1000)) ;;
    *s) echo "${d%s}" ;;
    *m) echo $((${d%m} * 60)) ;;
    *h) echo $((${d%h} * 3600)) ;;
    *) echo "$d" ;;
  esac
}
DURATION_S=$(dur_secs "$DURATION")
[[ $DURATION_S =~ ^[0-9]+$ && $DURATION_S -ge 1 ]] || die "bad BENCH_DURATION '$DURATION'"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "bad BENCH_REPEAT '$REPEAT'"
[[ $IDLE =~ ^[0-9]+$ && $IDLE_LOAD =~ ^[1-9][0-9]*$ ]] || die "bad BENCH_IDLE '$IDLE' or BENCH_IDLE_LOAD '$IDLE_LOAD'"
NOISE_PCT=${BENCH_NOISE_PCT:-$([[ $SCHED == fifo ]] && echo 60 || echo 10)}
[[ $NOISE_PCT =~ ^[0-9]+$ ]] || die "bad BENCH_NOISE_PCT '$NOISE_PCT'"
[[ $SPREAD_PCT =~ ^[0-9]+$ ]] || die "bad BENCH_SPREAD_PCT '$SPREAD_PCT'"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
chmod 755 "$WORK" # nginx workers run as an unprivileged user
mkdir -p "$RAW"

# ---------------------------------------------------------------------------------------------
# Sluice agent
if [[ -n ${SLUICE_AGENT:-} ]]; then
  AGENT=$SLUICE_AGENT
  [[ -x $AGENT ]] || die "SLUICE_AGENT=$AGENT is not an executable"
elif [[ " $PROXIES " == *" sluice "* ]]; then
  need cmake
  need ninja
  BUILD_DIR=${SLUICE_BUILD_DIR:-${TMPDIR:-/tmp}/sluice-bench-build}
  log "building ingress-agent (Release) in $BUILD_DIR"
  cmake -S "$REPO" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$WORK/cmake.log" 2>&1 ||
    { tail -30 "$WORK/cmake.log" >&2; die "cmake configure failed"; }
  ninja -C "$BUILD_DIR" ingress-agent >"$WORK/ninja.log" 2>&1 ||
    { tail -40 "$WORK/ninja.log" >&2; die "building ingress-agent failed"; }
  AGENT=$BUILD_DIR/userspace/app/ingress-agent
  [[ -x $AGENT ]] || AGENT=$(find "$BUILD_DIR" -type f -name ingress-agent -perm -u+x | head -1)
  [[ -n $AGENT && -x $AGENT ]] || die "built, but cannot find the ingress-agent binary in $BUILD_DIR"
else
  AGENT=""
fi

# ---------------------------------------------------------------------------------------------
# The origin: one nginx on the client core, serving a fixed 1 KiB body with keep-alive.
BODY=$(for _ in $(seq 64); do printf '0123456789abcdef'; done) # 64 x 16 = 1024 bytes
printf '%s' "$BODY" >"$WORK/expected-body"
(($(stat -c %s "$WORK/expected-body") == 1024)) || die "internal: body is not 1024 bytes"

# TLS: one certificate for every proxy, made for this run only.
SCHEME=http NGINX_SSL="" NGINX_TLS="" HAPROXY_SSL="" HAPROXY_TUNE="" WRK_EXTRA=()
[[ $TLS_NEW == 1 || $TLS_NEW == full ]] && WRK_EXTRA=(-H "Connection: close")
if [[ -n $TLS ]]; then
  SCHEME=https
  if [[ $TLS == ecdsa ]]; then keyopt=(-newkey ec -pkeyopt ec_paramgen_curve:P-256); else keyopt=(-newkey rsa:2048); fi
  openssl req -x509 "${keyopt[@]}" -nodes -days 2 -subj /CN=bench -addext subjectAltName=DNS:bench \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null || die "openssl could not make a certificate"
  cat "$WORK/tls.crt" "$WORK/tls.key" >"$WORK/tls.pem"
  # Each proxy's defaults otherwise: TLS 1.2 and 1.3, which wrk (OpenSSL 3) negotiates as 1.3.
  NGINX_SSL=" ssl"
  NGINX_TLS="ssl_certificate $WORK/tls.crt; ssl_certificate_key $WORK/tls.key; ssl_protocols TLSv1.2 TLSv1.3;"
  HAPROXY_SSL=" ssl crt $WORK/tls.pem"
  SLUICE_TLS=()
  if [[ $TLS_NEW == full ]]; then
    NGINX_TLS+=" ssl_session_tickets off; ssl_session_cache off;"
    HAPROXY_SSL+=" no-tls-tickets"
    HAPROXY_TUNE="tune.ssl.cachesize 0"  # no session-ID cache either: every handshake full
    SLUICE_TLS=(--tls-session-tickets false)
  fi
  { printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: bench-tls, namespace: bench}\n'
    printf 'type: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n' \
      "$(base64 -w0 "$WORK/tls.crt")" "$(base64 -w0 "$WORK/tls.key")"; } >"$WORK/tls-secret.yaml"
  log "TLS: $TLS certificate; ${TLS_NEW/#0/keep-alive} (1: a new, resumed connection per request; full: a full handshake per request)"
fi

ORIGIN_DIR=$WORK/origin
mkdir -p "$ORIGIN_DIR"/{tmp,logs}
pick_port ORIGIN_PORT
render "$BENCH_DIR/origin-nginx.conf" "$ORIGIN_DIR/nginx.conf" \
  "PREFIX=$ORIGIN_DIR" "PORT=$ORIGIN_PORT" "BODY=$BODY"
nginx -t -p "$ORIGIN_DIR" -c "$ORIGIN_DIR/nginx.conf" -e "$ORIGIN_DIR/origin-error.log" \
  >"$ORIGIN_DIR/configtest.log" 2>&1 || { cat "$ORIGIN_DIR/configtest.log" >&2; die "origin nginx config invalid"; }
log "origin: nginx on 127.0.0.1:$ORIGIN_PORT (core $CLIENT_CPU)"
start_bg "$ORIGIN_DIR/stdout.log" "${PRIO[@]}" taskset -c "$CLIENT_CPU" \
  nginx -p "$ORIGIN_DIR" -c "$ORIGIN_DIR/nginx.conf" -e "$ORIGIN_DIR/origin-error.log"
ORIGIN_PID=$START_PID
wait_http "http://127.0.0.1:$ORIGIN_PORT/" 10 "$ORIGIN_PID" ||
  { cat "$ORIGIN_DIR"/*.log >&2 || true; die "origin nginx did not come up"; }

check_body() { # check_body NAME URL: 200 and exactly the 1 KiB body, or die
  local name=$1 url=$2 code
  code=$(curl -sS -k -o "$WORK/body.$name" -w '%{http_code}' --max-time 5 "$url" 2>"$WORK/curl.$name.err" || true)
  if [[ $code != 200 ]]; then
    cat "$WORK/curl.$name.err" >&2 || true
    die "$name: sanity check failed: GET $url returned HTTP '$code', want 200"
  fi
  if ! cmp -s "$WORK/body.$name" "$WORK/expected-body"; then
    die "$name: sanity check failed: GET $url returned a $(stat -c %s "$WORK/body.$name")-byte body that is not the origin's 1 KiB body"
  fi
}
check_body origin "http://127.0.0.1:$ORIGIN_PORT/"

# ---------------------------------------------------------------------------------------------
# Proxies: start one fresh (so VmHWM covers only this run), pinned to the proxy core. The idle
# workload needs more connections than nginx's and HAProxy's defaults here; they get them only
# there, since both size tables by their limits (more RSS in the other workloads otherwise).
# Sluice's default --max-connections follows the file limit ((limit - 256) / 4, under 5,000 with
# this machine's 20,000), so the idle run sets it; every proxy keeps idle clients 75 s.
start_proxy() { # start_proxy NAME RUN_DIR [IDLE_CONNECTIONS] -> PROXY_PID, PROXY_PORT
  local name=$1 dir=$2 many=${3:-} admin_port plain_port
  local worker_connections=8192 rlimit_nofile=16384 maxconn=8000
  if [[ -n $many ]]; then
    worker_connections=$((2 * many + 4096)) rlimit_nofile=$(ulimit -Hn) maxconn=$((many + 100))
  fi
  mkdir -p "$dir/tmp"
  pick_port PROXY_PORT
  case $name in
    sluice)
      mkdir -p "$dir/manifests"
      render "$BENCH_DIR/sluice-manifests.yaml" "$dir/manifests/bench.yaml" "ORIGIN_PORT=$ORIGIN_PORT"
      pick_port admin_port
      local listen=(--listen-http "127.0.0.1:$PROXY_PORT" --listen-https "")
      if [[ -n $TLS ]]; then
        cp "$WORK/tls-secret.yaml" "$dir/manifests/"
        pick_port plain_port
        listen=(--listen-http "127.0.0.1:$plain_port" --listen-https "127.0.0.1:$PROXY_PORT"
          --default-ssl-certificate bench/bench-tls "${SLUICE_TLS[@]}")
      fi
      start_bg "$dir/agent.log" "${PRIO[@]}" taskset -c "$PROXY_CPU" "$AGENT" \
        --manifests "$dir/manifests" "${listen[@]}" \
        --admin "127.0.0.1:$admin_port" --workers 1 --log-level warn --idle-timeout 75s \
        ${many:+--max-connections $((many + 1000))} ${BENCH_SLUICE_ARGS:-}
      PROXY_PID=$START_PID
      wait_http "http://127.0.0.1:$admin_port/readyz" 20 "$PROXY_PID" ||
        { tail -40 "$dir/agent.log" >&2; die "sluice did not become ready (admin /readyz)"; }
      ;;
    nginx)
      render "$BENCH_DIR/nginx.conf" "$dir/nginx.conf" \
        "PREFIX=$dir" "PORT=$PROXY_PORT" "ORIGIN_PORT=$ORIGIN_PORT" \
        "WORKER_CONNECTIONS=$worker_connections" "RLIMIT_NOFILE=$rlimit_nofile" \
        "SSL=$NGINX_SSL" "TLS=$NGINX_TLS"
      nginx -t -p "$dir" -c "$dir/nginx.conf" -e "$dir/nginx-error.log" >"$dir/configtest.log" 2>&1 ||
        { cat "$dir/configtest.log" >&2; die "nginx proxy config invalid"; }
      start_bg "$dir/stdout.log" "${PRIO[@]}" taskset -c "$PROXY_CPU" \
        nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/nginx-error.log"
      PROXY_PID=$START_PID
      ;;
    haproxy)
      render "$BENCH_DIR/haproxy.cfg" "$dir/haproxy.cfg" "PORT=$PROXY_PORT" "ORIGIN_PORT=$ORIGIN_PORT" \
        "MAXCONN=$maxconn" "SSL=$HAPROXY_SSL" "TUNE=$HAPROXY_TUNE"
      haproxy -c -f "$dir/haproxy.cfg" >"$dir/configtest.log" 2>&1 ||
        { cat "$dir/configtest.log" >&2; die "haproxy config invalid"; }
      start_bg "$dir/haproxy.log" "${PRIO[@]}" taskset -c "$PROXY_CPU" haproxy -db -f "$dir/haproxy.cfg"
      PROXY_PID=$START_PID
      ;;
    caddy)
      render "$BENCH_DIR/Caddyfile" "$dir/Caddyfile" "PORT=$PROXY_PORT" "ORIGIN_PORT=$ORIGIN_PORT"
      start_bg "$dir/caddy.log" env GOMAXPROCS=1 HOME="$dir" XDG_DATA_HOME="$dir/data" \
        XDG_CONFIG_HOME="$dir/config" "${PRIO[@]}" taskset -c "$PROXY_CPU" \
        caddy run --config "$dir/Caddyfile" --adapter caddyfile
      PROXY_PID=$START_PID
      ;;
  esac
  wait_http "$SCHEME://127.0.0.1:$PROXY_PORT/" 20 "$PROXY_PID" ||
    { tail -40 "$dir"/*.log >&2 || true; die "$name did not start serving 200 on 127.0.0.1:$PROXY_PORT"; }
  check_body "$name" "$SCHEME://127.0.0.1:$PROXY_PORT/"
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # utime+stime (all threads) of pid and all its descendants
  local total=0 pid line rest f
  for pid in $(descendants "$1"); do
    line=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    rest=${line##*) } # fields from 3 (state) on; comm may contain spaces
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12])) # field 14 utime, 15 stime
  done
  echo "$total"
}
status_kib() { # status_kib FIELD PID: sum of /proc/*/status FIELD (kB) over pid and descendants
  local total=0 pid v
  for pid in $(descendants "$2"); do
    v=$(awk -v f="$1:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
hwm_kib() { status_kib VmHWM "$1"; } # peak RSS
rss_kib() { status_kib VmRSS "$1"; } # RSS now
core_busy() { # "busy total" jiffies of one core from /proc/stat
  awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

run_wrk() { # run_wrk CONNS DURATION URL OUTFILE -> WRK_TICKS (CPU ticks wrk itself used)
  local c=$1 d=$2 url=$3 out=$4 t=$WRK_THREADS
  ((t <= c)) || t=$c
  (
    rc=0
    "${PRIO[@]}" taskset -c "$CLIENT_CPU" wrk -t"$t" -c"$c" -d"$d" --latency \
      "${WRK_EXTRA[@]}" "$url" >"$out" 2>&1 || rc=$?
    read -r line <"/proc/$BASHPID/stat" # this subshell's own stat (not a $(...) child's)
    read -r -a f <<<"${line##*) }"
    echo $((f[13] + f[14])) >"$out.ticks" # cutime + cstime: the reaped wrk
    exit "$rc"
  ) &
  local wpid=$!
  STARTED_PIDS+=("$wpid")
  # `wait` (unlike a foreground command) returns at once on INT/TERM, so cleanup runs promptly.
  wait "$wpid" || { forget_pid "$wpid"; cat "$out" >&2; die "wrk failed ($url, $c connections)"; }
  forget_pid "$wpid"
  WRK_TICKS=$(cat "$out.ticks")
  rm -f "$out.ticks"
}

# ---------------------------------------------------------------------------------------------
# What is the same for every run: report.py adds the date, the commit and the machine.
report() { python3 "$BENCH_DIR/report.py" "$@"; }
V_NGINX=$(nginx -v 2>&1 | sed 's/^nginx version: //')
V_HAPROXY=$( (haproxy -v 2>/dev/null || true) | head -1 | awk '{print "haproxy " $3}')
V_CADDY=$( (caddy version 2>/dev/null || true) | head -1 | awk '{print "caddy " $1}')
V_WRK=$( (wrk -v 2>&1 || true) | head -1 | awk '{print "wrk " $2}')
write_meta() { # written just before the first run, so loadavg_at_start is that moment's
  report meta --out "$RAW/meta.json" --command "$CMD_LINE" --repo "$REPO" \
    "versions.nginx=$V_NGINX" "versions.haproxy=$V_HAPROXY" "versions.caddy=$V_CADDY" \
    "versions.wrk=$V_WRK" "settings.duration=$DURATION" "settings.warmup=$WARMUP" \
    "settings.wrk_threads:=$WRK_THREADS" "settings.repeat:=$REPEAT" \
    "settings.proxy_cpu:=$PROXY_CPU" "settings.client_cpu:=$CLIENT_CPU" \
    "settings.scheduling=${SCHED_DESC:-default}" "settings.body_bytes:=1024" \
    "settings.noise_percent:=$NOISE_PCT" "settings.spread_percent:=$SPREAD_PCT"
}

# ---------------------------------------------------------------------------------------------
# The runs
both_cores() { # busy and total jiffies over the proxy core and the client core together
  awk -v a="cpu$PROXY_CPU" -v b="cpu$CLIENT_CPU" '$1 == a || $1 == b {
      for (i = 2; i <= NF; i++) t += $i; busy += $2 + $3 + $4 + $7 + $8 + $9 }
    END { print busy, t }' /proc/stat
}

# One run: fresh proxy, warm-up, measured wrk, samples; report.py appends its record to
# $RAW/runs.jsonl (the samples are deltas over the measured run: CPU ticks of the proxy, the origin
# and wrk, busy/total jiffies of the cores, the proxy's VmHWM).
do_run() {
  local proxy=$1 c=$2 rep=$3 run_dir raw url
  local before_cpu after_cpu before_origin after_origin b0 bt0 b1 bt1 a0 at0 a1 at1 bb bt ab at t0 t1 rss_kib
  local summary
  run_dir=$WORK/$proxy-c$c-r$rep
  raw=$RAW/$proxy-c$c-r$rep
  log "$proxy, $c connections, run $rep/$REPEAT: starting $proxy fresh"
  start_proxy "$proxy" "$run_dir"
  url="$SCHEME://127.0.0.1:$PROXY_PORT/"
  if [[ $WARMUP != 0 && $WARMUP != 0s ]]; then
    run_wrk "$c" "$WARMUP" "$url" "$raw.warmup.txt"
  fi
  before_cpu=$(cpu_ticks "$PROXY_PID")
  before_origin=$(cpu_ticks "$ORIGIN_PID")
  read -r b0 bt0 < <(core_busy "$PROXY_CPU")
  read -r b1 bt1 < <(core_busy "$CLIENT_CPU")
  read -r bb bt < <(both_cores)
  t0=$(date +%s.%N)
  run_wrk "$c" "$DURATION" "$url" "$raw.txt"
  t1=$(date +%s.%N)
  after_cpu=$(cpu_ticks "$PROXY_PID")
  after_origin=$(cpu_ticks "$ORIGIN_PID")
  read -r a0 at0 < <(core_busy "$PROXY_CPU")
  read -r a1 at1 < <(core_busy "$CLIENT_CPU")
  read -r ab at < <(both_cores)
  rss_kib=$(hwm_kib "$PROXY_PID")
  alive "$PROXY_PID" || die "$proxy died during the run (see $run_dir)"

  summary=$(report http-record "$RAW/runs.jsonl" --wrk "$raw.txt" --proxy "$proxy" --conns "$c" \
    --run "$rep" --raw-path "${RAW#"$REPO"/}/$proxy-c$c-r$rep.txt" --clk-tck "$CLK_TCK" \
    --started "$t0" --ended "$t1" --proxy-ticks "$((after_cpu - before_cpu))" \
    --origin-ticks "$((after_origin - before_origin))" --wrk-ticks "$WRK_TICKS" \
    --rss-kib "$rss_kib" --proxy-core "$((a0 - b0)),$((at0 - bt0))" \
    --client-core "$((a1 - b1)),$((at1 - bt1))" --both-cores "$((ab - bb)),$((at - bt))") ||
    die "$proxy, $c connections: ${summary:-recording the run failed}"
  log "$summary"

  if [[ $proxy == "$PERF_TARGET" && $rep == 1 ]]; then
    log "$proxy c=$c: extra profiled run (perf record -g, not reported)"
    local pids perf_data perf_pid
    pids=$(descendants "$PROXY_PID" | paste -sd, -)
    perf_data=$RAW/perf-$proxy-c$c.data
    start_bg "$run_dir/perf.log" perf record -g -o "$perf_data" -p "$pids" -- sleep "$DURATION_S"
    perf_pid=$START_PID
    run_wrk "$c" "$DURATION" "$url" "$RAW/perf-$proxy-c$c.wrk.txt"
    wait "$perf_pid" 2>/dev/null || true
    forget_pid "$perf_pid"
    perf report -i "$perf_data" --stdio --no-children --percent-limit 0.5 \
      >"$RAW/perf-$proxy-c$c.report.txt" 2>/dev/null || log "perf report failed"
    perf report -i "$perf_data" --stdio --no-children -g none --percent-limit 0.3 \
      >"$RAW/perf-$proxy-c$c.flat.txt" 2>/dev/null || true
  fi
  stop_pid "$PROXY_PID"
}

# The idle workload: a light load while IDLE keep-alive connections sit idle. Sampled like
# do_run over the measured wrk run, plus the proxy's RSS before the idle connections opened (after
# the warm-up), so that report.py can give the cost of one idle connection.
do_idle_run() {
  local proxy=$1 rep=$2 c=$IDLE_LOAD run_dir raw url holder_pid base_kib failed
  local before_cpu after_cpu before_origin after_origin b0 bt0 b1 bt1 a0 at0 a1 at1 bb bt ab at t0 t1
  local summary label="$IDLE_LOAD+${IDLE}idle" idle=$IDLE
  # HAProxy reserves two descriptors per connection (client and server) for maxconn, idle or not,
  # and refuses to start when that passes the hard file limit: it gets what the limit allows.
  if [[ $proxy == haproxy ]] && ((2 * (idle + 100) + 64 > $(ulimit -Hn))); then
    idle=$((($(ulimit -Hn) - 64) / 2 - 100))
    log "haproxy: $idle idle connections, not $IDLE: the hard file limit $(ulimit -Hn) allows no more"
  fi
  run_dir=$WORK/$proxy-idle-r$rep
  raw=$RAW/$proxy-idle-r$rep
  log "$proxy, $idle idle connections + $c loaded, run $rep/$REPEAT: starting $proxy fresh"
  start_proxy "$proxy" "$run_dir" "$idle"
  url="$SCHEME://127.0.0.1:$PROXY_PORT/"
  local warm=$WARMUP
  [[ $warm == 0 || $warm == 0s ]] && warm=2s # the base RSS is taken after a warm-up, always
  run_wrk "$c" "$warm" "$url" "$raw.warmup.txt"
  base_kib=$(rss_kib "$PROXY_PID")
  rm -f "$run_dir/idle.ready"
  start_bg "$run_dir/idle.log" "${PRIO[@]}" taskset -c "$CLIENT_CPU" \
    python3 "$BENCH_DIR/tools/idle_holder.py" "$PROXY_PORT" "$idle" "$run_dir/idle.ready" ${TLS:+tls}
  holder_pid=$START_PID
  for _ in $(seq 600); do
    [[ -s $run_dir/idle.ready ]] && break
    alive "$holder_pid" || break
    sleep 0.2
  done
  [[ -s $run_dir/idle.ready ]] || { cat "$run_dir/idle.log" >&2; die "$proxy: the idle holder did not open $idle connections"; }
  failed=$(cat "$run_dir/idle.ready")
  ((failed == 0)) || log "warning: $failed of $idle idle connections failed to open ($proxy)"
  before_cpu=$(cpu_ticks "$PROXY_PID")
  before_origin=$(cpu_ticks "$ORIGIN_PID")
  read -r b0 bt0 < <(core_busy "$PROXY_CPU")
  read -r b1 bt1 < <(core_busy "$CLIENT_CPU")
  read -r bb bt < <(both_cores)
  t0=$(date +%s.%N)
  run_wrk "$c" "$DURATION" "$url" "$raw.txt"
  t1=$(date +%s.%N)
  after_cpu=$(cpu_ticks "$PROXY_PID")
  after_origin=$(cpu_ticks "$ORIGIN_PID")
  read -r a0 at0 < <(core_busy "$PROXY_CPU")
  read -r a1 at1 < <(core_busy "$CLIENT_CPU")
  read -r ab at < <(both_cores)
  alive "$PROXY_PID" || die "$proxy died during the idle run (see $run_dir)"
  summary=$(report http-record "$RAW/runs.jsonl" --wrk "$raw.txt" --proxy "$proxy" --conns "$label" \
    --run "$rep" --raw-path "${RAW#"$REPO"/}/$proxy-idle-r$rep.txt" --clk-tck "$CLK_TCK" \
    --started "$t0" --ended "$t1" --proxy-ticks "$((after_cpu - before_cpu))" \
    --origin-ticks "$((after_origin - before_origin))" --wrk-ticks "$WRK_TICKS" \
    --rss-kib "$(hwm_kib "$PROXY_PID")" --proxy-core "$((a0 - b0)),$((at0 - bt0))" \
    --client-core "$((a1 - b1)),$((at1 - bt1))" --both-cores "$((ab - bb)),$((at - bt))" \
    --idle "$((idle - failed))" --rss-base-kib "$base_kib") ||
    die "$proxy, idle: ${summary:-recording the run failed}"
  log "$summary"
  stop_pid "$holder_pid"
  stop_pid "$PROXY_PID"
}

find "$RAW" -maxdepth 1 -type f -delete # raw/ holds the latest run's outputs only
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
write_meta
log "proxies: $PROXIES; connections: $CONNS; duration $DURATION (warm-up $WARMUP); wrk threads $WRK_THREADS; repeat $REPEAT; load average $LOADAVG"
# Repetitions are interleaved (all proxies, then all again) so slow drifts hit every proxy alike.
for ((rep = 1; rep <= REPEAT; rep++)); do
  for proxy in $PROXIES; do
    for c in $CONNS; do
      do_run "$proxy" "$c" "$rep"
    done
    if ((IDLE > 0)) && [[ $proxy != caddy ]]; then
      do_idle_run "$proxy" "$rep"
    fi
  done
done

# Statistics (median run, ranges, CPU / origin, noise flags), latest.json and the Markdown section.
report http-report --meta "$RAW/meta.json" --records "$RAW/runs.jsonl" --json "$RESULTS/latest.json" \
  --doc "$DOC" || die "writing the report failed (records in $RAW/runs.jsonl)"
log "wrote $DOC, $RESULTS/latest.json and raw outputs in $RAW"

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
# this script starts is stopped by pid on exit. Results: docs/benchmarks.md (marked section),
# bench/results/latest.json and raw wrk outputs under bench/results/raw/ (gitignored).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

# The exact command, as typed (only the knobs that were set), for the report.
CMD_LINE=""
for v in SLUICE_AGENT BENCH_DURATION BENCH_WARMUP BENCH_PROXIES BENCH_CONNS BENCH_WRK_THREADS \
         BENCH_REPEAT BENCH_PROXY_CPU BENCH_CLIENT_CPU BENCH_SCHED BENCH_PERF; do
  if [[ -n ${!v:-} ]]; then
    CMD_LINE+="$v=$(printf '%q' "${!v}") "
  fi
done
CMD_LINE+="bench/run.sh${*:+ $*}"

DURATION=${BENCH_DURATION:-15s}
WARMUP=${BENCH_WARMUP:-3s}
PROXIES=${BENCH_PROXIES:-"sluice nginx haproxy caddy"}
CONNS=${BENCH_CONNS:-"64 1000"}
REPEAT=${BENCH_REPEAT:-1}
SPREAD_PCT=${BENCH_SPREAD_PCT:-15}
WRK_THREADS=${BENCH_WRK_THREADS:-1}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
DOC=${BENCH_DOC:-$REPO/docs/benchmarks.md}
PERF_TARGET=${BENCH_PERF:-}
RESULTS=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}
RAW=$RESULTS/raw

BENCH_TAG=bench
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

# ---------------------------------------------------------------------------------------------
# Preflight
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found (install it: SLUICE_BENCH=1 scripts/install-deps.sh)"; }
for c in wrk curl taskset ss pgrep awk nginx cmp sed; do need "$c"; done
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
  code=$(curl -sS -o "$WORK/body.$name" -w '%{http_code}' --max-time 5 "$url" 2>"$WORK/curl.$name.err" || true)
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
# Proxies: start one fresh (so VmHWM covers only this run), pinned to the proxy core.
start_proxy() { # start_proxy NAME RUN_DIR -> PROXY_PID, PROXY_PORT
  local name=$1 dir=$2 admin_port
  mkdir -p "$dir/tmp"
  pick_port PROXY_PORT
  case $name in
    sluice)
      mkdir -p "$dir/manifests"
      render "$BENCH_DIR/sluice-manifests.yaml" "$dir/manifests/bench.yaml" "ORIGIN_PORT=$ORIGIN_PORT"
      pick_port admin_port
      start_bg "$dir/agent.log" "${PRIO[@]}" taskset -c "$PROXY_CPU" "$AGENT" \
        --manifests "$dir/manifests" --listen-http "127.0.0.1:$PROXY_PORT" \
        --admin "127.0.0.1:$admin_port" --workers 1 --log-level warn
      PROXY_PID=$START_PID
      wait_http "http://127.0.0.1:$admin_port/readyz" 20 "$PROXY_PID" ||
        { tail -40 "$dir/agent.log" >&2; die "sluice did not become ready (admin /readyz)"; }
      ;;
    nginx)
      render "$BENCH_DIR/nginx.conf" "$dir/nginx.conf" \
        "PREFIX=$dir" "PORT=$PROXY_PORT" "ORIGIN_PORT=$ORIGIN_PORT"
      nginx -t -p "$dir" -c "$dir/nginx.conf" -e "$dir/nginx-error.log" >"$dir/configtest.log" 2>&1 ||
        { cat "$dir/configtest.log" >&2; die "nginx proxy config invalid"; }
      start_bg "$dir/stdout.log" "${PRIO[@]}" taskset -c "$PROXY_CPU" \
        nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/nginx-error.log"
      PROXY_PID=$START_PID
      ;;
    haproxy)
      render "$BENCH_DIR/haproxy.cfg" "$dir/haproxy.cfg" "PORT=$PROXY_PORT" "ORIGIN_PORT=$ORIGIN_PORT"
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
  wait_http "http://127.0.0.1:$PROXY_PORT/" 20 "$PROXY_PID" ||
    { tail -40 "$dir"/*.log >&2 || true; die "$name did not start serving 200 on 127.0.0.1:$PROXY_PORT"; }
  check_body "$name" "http://127.0.0.1:$PROXY_PORT/"
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
hwm_kib() { # sum of VmHWM over pid and descendants
  local total=0 pid v
  for pid in $(descendants "$1"); do
    v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
core_busy() { # "busy total" jiffies of one core from /proc/stat
  awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

parse_wrk() { # rps p50_ms p99_ms requests socket_errors non2xx sockerr_detail
  awk '
    function ms(v,   n, u) {
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n / 1000; if (u == "ms") return n; if (u == "s") return n * 1000
      if (u == "m") return n * 60000; if (u == "h") return n * 3600000; return n
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    / requests in / { req = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Socket errors:/ {
      detail = $0; sub(/^ *Socket errors: */, "", detail)
      for (i = 3; i <= NF; i += 2) { v = $(i + 1); sub(/,/, "", v); se += v }
    }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    END {
      if (detail == "") detail = "none"
      gsub(/ /, "_", detail)
      printf "%s %s %s %s %d %d %s\n", (rps == "" ? "0" : rps), (p50 == "" ? "0" : p50),
             (p99 == "" ? "0" : p99), (req == "" ? "0" : req), se, non2xx, detail
    }' "$1"
}

run_wrk() { # run_wrk CONNS DURATION URL OUTFILE -> WRK_TICKS (CPU ticks wrk itself used)
  local c=$1 d=$2 url=$3 out=$4 t=$WRK_THREADS
  ((t <= c)) || t=$c
  (
    rc=0
    "${PRIO[@]}" taskset -c "$CLIENT_CPU" wrk -t"$t" -c"$c" -d"$d" --latency "$url" >"$out" 2>&1 || rc=$?
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
# Machine description
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
[[ -n $CPU_MODEL ]] || CPU_MODEL=$(awk -F': *' '/^(Hardware|cpu model|uarch)/ {print $2; exit}' /proc/cpuinfo)
KERNEL=$(uname -srm)
MEM_TOTAL=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
VIRT=$(systemd-detect-virt 2>/dev/null || true)
V_NGINX=$(nginx -v 2>&1 | sed 's/^nginx version: //')
V_HAPROXY=$( (haproxy -v 2>/dev/null || true) | head -1 | awk '{print "haproxy " $3}')
V_CADDY=$( (caddy version 2>/dev/null || true) | head -1 | awk '{print "caddy " $1}')
V_WRK=$( (wrk -v 2>&1 || true) | head -1 | awk '{print "wrk " $2}')
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $GIT_REV != unknown && -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  GIT_REV+="+dirty"
fi
DATE_UTC=$(date -u '+%Y-%m-%d %H:%M UTC')

# ---------------------------------------------------------------------------------------------
# The runs
both_cores() { # busy and total jiffies over the proxy core and the client core together
  awk -v a="cpu$PROXY_CPU" -v b="cpu$CLIENT_CPU" '$1 == a || $1 == b {
      for (i = 2; i <= NF; i++) t += $i; busy += $2 + $3 + $4 + $7 + $8 + $9 }
    END { print busy, t }' /proc/stat
}

# One run: fresh proxy, warm-up, measured wrk, samples. Appends to RUNS:
# proxy conns rep rps p50 p99 requests sockerr non2xx detail cpu_s cpu100k proxy% rss_mib core0% core1% other%
RUNS=()
do_run() {
  local proxy=$1 c=$2 rep=$3 run_dir raw url
  local before_cpu after_cpu before_origin after_origin b0 bt0 b1 bt1 a0 at0 a1 at1 bb bt ab at t0 t1 rss_kib
  local rps p50 p99 reqs sockerr non2xx detail res
  run_dir=$WORK/$proxy-c$c-r$rep
  raw=$RAW/$proxy-c$c-r$rep
  log "$proxy, $c connections, run $rep/$REPEAT: starting $proxy fresh"
  start_proxy "$proxy" "$run_dir"
  url="http://127.0.0.1:$PROXY_PORT/"
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

  read -r rps p50 p99 reqs sockerr non2xx detail < <(parse_wrk "$raw.txt")
  ((reqs > 0)) || die "$proxy, $c connections: wrk completed no requests (see $raw.txt)"
  res=$(awk -v d="$((after_cpu - before_cpu))" -v hz="$CLK_TCK" -v n="$reqs" -v t0="$t0" -v t1="$t1" \
    -v k="$rss_kib" -v b0="$((a0 - b0))" -v tt0="$((at0 - bt0))" -v b1="$((a1 - b1))" \
    -v tt1="$((at1 - bt1))" -v ours="$((after_cpu - before_cpu + after_origin - before_origin + WRK_TICKS))" \
    -v bb="$((ab - bb))" -v bt="$((at - bt))" 'BEGIN {
      s = d / hz
      other = (bt > 0 ? 200 * (bb - ours) / bt : 0); if (other < 0) other = 0
      printf "%.2f %.3f %.0f %.1f %.0f %.0f %.0f", s, s / n * 100000, 100 * s / (t1 - t0), k / 1024,
             (tt0 > 0 ? 100 * b0 / tt0 : 0), (tt1 > 0 ? 100 * b1 / tt1 : 0), other
    }')
  RUNS+=("$proxy $c $rep $rps $p50 $p99 $reqs $sockerr $non2xx $detail $res")
  read -r _ cpu100k util rss_mib _ _ other <<<"$res"
  log "$proxy c=$c run $rep: $rps req/s, p50 $p50 ms, p99 $p99 ms, $cpu100k CPU-s/100k, $rss_mib MiB, errors socket=$sockerr non2xx=$non2xx, proxy CPU $util%, other processes $other% of a core"

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

find "$RAW" -maxdepth 1 -type f -delete # raw/ holds the latest run's outputs only
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
log "proxies: $PROXIES; connections: $CONNS; duration $DURATION (warm-up $WARMUP); wrk threads $WRK_THREADS; repeat $REPEAT; load average $LOADAVG"
# Repetitions are interleaved (all proxies, then all again) so slow drifts hit every proxy alike.
for ((rep = 1; rep <= REPEAT; rep++)); do
  for proxy in $PROXIES; do
    for c in $CONNS; do
      do_run "$proxy" "$c" "$rep"
    done
  done
done

# The reported row per (proxy, conns) is the run with the median req/s (lower median if even).
# SPREAD["proxy conns"]: "min_rps max_rps spread_pct min_cpu100k max_cpu100k" over its runs.
ROWS=()
declare -A SPREAD=()
for proxy in $PROXIES; do
  for c in $CONNS; do
    mapfile -t picks < <(printf '%s\n' "${RUNS[@]}" | awk -v p="$proxy" -v c="$c" '$1 == p && $2 == c' | sort -k4,4g)
    med=${picks[$(((${#picks[@]} - 1) / 2))]}
    ROWS+=("$med")
    SPREAD["$proxy $c"]=$(printf '%s\n' "${picks[@]}" | awk -v med="$(cut -d' ' -f4 <<<"$med")" '
      NR == 1 { lo = hi = $4; clo = chi = $12 }
      { if ($4 < lo) lo = $4; if ($4 > hi) hi = $4; if ($12 < clo) clo = $12; if ($12 > chi) chi = $12 }
      END { printf "%.0f %.0f %.0f %.2f %.2f", lo, hi, (med > 0 ? 100 * (hi - lo) / med : 0), clo, chi }')
  done
done

# ---------------------------------------------------------------------------------------------
# Reports
errors_cell() { # sockerr non2xx detail
  if (($1 == 0 && $2 == 0)); then
    echo "0"
  else
    local d=${3//_/ } parts=()
    (($1 > 0)) && parts+=("socket: ${d//, /\/}")
    (($2 > 0)) && parts+=("non-2xx/3xx: $2")
    local IFS=';'
    echo "⚠ $(($1 + $2)) (${parts[*]})"
  fi
}

json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
fmt() { awk -v v="$2" -v f="$1" 'BEGIN { printf f, v }'; }

json_run() { # one RUNS entry as a JSON object
  local proxy c rep rps p50 p99 reqs sockerr non2xx detail cpu_s cpu100k util rss core0 core1 other
  read -r proxy c rep rps p50 p99 reqs sockerr non2xx detail cpu_s cpu100k util rss core0 core1 other <<<"$1"
  printf '{"proxy": "%s", "connections": %d, "run": %d, "requests_per_sec": %s, "p50_ms": %s, "p99_ms": %s, ' \
    "$proxy" "$c" "$rep" "$rps" "$p50" "$p99"
  printf '"requests": %d, "proxy_cpu_seconds": %s, "cpu_seconds_per_100k_requests": %s, ' "$reqs" "$cpu_s" "$cpu100k"
  printf '"proxy_cpu_percent": %s, "proxy_core_busy_percent": %s, "client_core_busy_percent": %s, ' "$util" "$core0" "$core1"
  printf '"other_processes_cpu_percent": %s, "noisy": %s, ' "$other" "$( ((other > NOISE_PCT)) && echo true || echo false)"
  printf '"peak_rss_mib": %s, "socket_errors": %d, "socket_error_detail": %s, "non_2xx_3xx": %d, "flagged": %s, ' \
    "$rss" "$sockerr" "$(json_str "${detail//_/ }")" "$non2xx" "$( ((sockerr + non2xx > 0)) && echo true || echo false)"
  printf '"raw": %s}' "$(json_str "${RAW#"$REPO"/}/$proxy-c$c-r$rep.txt")"
}

{
  printf '{\n'
  printf '  "date": %s,\n' "$(json_str "$DATE_UTC")"
  printf '  "command": %s,\n' "$(json_str "$CMD_LINE")"
  printf '  "git": %s,\n' "$(json_str "$GIT_REV")"
  printf '  "machine": {"nproc": %d, "cpu": %s, "kernel": %s, "memory": %s, "virtualization": %s, "loadavg_at_start": %s},\n' \
    "$NPROC" "$(json_str "$CPU_MODEL")" "$(json_str "$KERNEL")" "$(json_str "$MEM_TOTAL")" \
    "$(json_str "${VIRT:-unknown}")" "$(json_str "$LOADAVG")"
  printf '  "versions": {"nginx": %s, "haproxy": %s, "caddy": %s, "wrk": %s},\n' \
    "$(json_str "$V_NGINX")" "$(json_str "$V_HAPROXY")" "$(json_str "$V_CADDY")" "$(json_str "$V_WRK")"
  printf '  "settings": {"duration": %s, "warmup": %s, "wrk_threads": %d, "repeat": %d, "proxy_cpu": %d, "client_cpu": %d, "scheduling": %s, "body_bytes": 1024},\n' \
    "$(json_str "$DURATION")" "$(json_str "$WARMUP")" "$WRK_THREADS" "$REPEAT" "$PROXY_CPU" "$CLIENT_CPU" "$(json_str "${SCHED_DESC:-default}")"
  printf '  "results": [\n'
  n=${#ROWS[@]}
  for ((i = 0; i < n; i++)); do
    read -r proxy c _ <<<"${ROWS[i]}"
    read -r lo hi spread clo chi <<<"${SPREAD["$proxy $c"]}"
    obj=$(json_run "${ROWS[i]}")
    printf '    %s, "runs": %d, "requests_per_sec_min": %s, "requests_per_sec_max": %s, "requests_per_sec_spread_percent": %s, "cpu_seconds_per_100k_min": %s, "cpu_seconds_per_100k_max": %s}%s\n' \
      "${obj%\}}" "$REPEAT" "$lo" "$hi" "$spread" "$clo" "$chi" "$( ((i < n - 1)) && echo , || true)"
  done
  printf '  ],\n  "all_runs": [\n'
  n=${#RUNS[@]}
  for ((i = 0; i < n; i++)); do
    printf '    %s%s\n' "$(json_run "${RUNS[i]}")" "$( ((i < n - 1)) && echo , || true)"
  done
  printf '  ]\n}\n'
} >"$RESULTS/latest.json"

NOISY=0
for row in "${ROWS[@]}"; do
  read -r proxy c _ _ _ _ _ _ _ _ _ _ _ _ _ _ other <<<"$row"
  read -r _ _ spread _ _ <<<"${SPREAD["$proxy $c"]}"
  ((other <= NOISE_PCT && (REPEAT == 1 || spread <= SPREAD_PCT))) || NOISY=$((NOISY + 1))
done

SECTION=$WORK/section.md
{
  echo "<!-- BEGIN BENCH RESULTS: generated by bench/run.sh; everything up to END is overwritten -->"
  echo "## Latest results"
  echo
  echo "Run on $DATE_UTC at commit \`$GIT_REV\` (load average at start: $LOADAVG) with:"
  echo
  echo '```sh'
  echo "$CMD_LINE"
  echo '```'
  echo
  echo "HTTP/1.1 keep-alive \`GET /\` of a 1024-byte body through each proxy to one shared nginx origin;"
  echo "wrk \`-t$WRK_THREADS -c<conns> -d$DURATION --latency\` after a $WARMUP unmeasured warm-up. Proxy"
  echo "pinned to core $PROXY_CPU with 1 worker/thread; wrk and the origin pinned to core $CLIENT_CPU${SCHED_DESC:+; all three at $SCHED_DESC}. Each"
  echo "proxy is started fresh for every run.$( ((REPEAT > 1)) && echo " Each row is the median-req/s run of $REPEAT (interleaved); all runs are in \`latest.json\`.")"
  echo
  echo "| proxy | conns | req/s | p50 ms | p99 ms | CPU s per 100k req | peak RSS MiB | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  for row in "${ROWS[@]}"; do
    read -r proxy c _ rps p50 p99 _ sockerr non2xx detail _ cpu100k _ rss _ <<<"$row"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$proxy" "$c" "$(fmt %.0f "$rps")" \
      "$(fmt %.2f "$p50")" "$(fmt %.2f "$p99")" "$(fmt %.2f "$cpu100k")" "$rss" \
      "$(errors_cell "$sockerr" "$non2xx" "$detail")"
  done
  echo
  echo "Where the CPU went during each reported run (percent of one core; core figures from"
  echo "/proc/stat; the proxy's own from utime+stime of its processes, which on this kernel includes"
  echo "the loopback softirq work done in its system calls). \"other\" is CPU that processes other than"
  echo "the proxy, the origin and wrk got on the two cores (flagged above $NOISE_PCT%)$([[ $SCHED == fifo ]] && echo "; under SCHED_FIFO they only run when the benchmark processes wait or are RT-throttled, so it says more about idle gaps than about interference")."
  if ((REPEAT > 1)); then
    echo "The last two columns show the range over the $REPEAT runs (flagged when req/s varied by more than $SPREAD_PCT% of the median)."
  fi
  echo
  if ((REPEAT > 1)); then
    echo "| proxy | conns | proxy CPU % | core $PROXY_CPU busy % | core $CLIENT_CPU busy % (wrk + origin) | other % | req/s over runs | CPU s/100k over runs |"
    echo "|---|---:|---:|---:|---:|---|---|---|"
  else
    echo "| proxy | conns | proxy CPU % | core $PROXY_CPU busy % | core $CLIENT_CPU busy % (wrk + origin) | other % |"
    echo "|---|---:|---:|---:|---:|---|"
  fi
  for row in "${ROWS[@]}"; do
    read -r proxy c _ _ _ _ _ _ _ _ _ _ util _ core0 core1 other <<<"$row"
    read -r lo hi spread clo chi <<<"${SPREAD["$proxy $c"]}"
    printf '| %s | %s | %s | %s | %s | %s |' "$proxy" "$c" "$util" "$core0" "$core1" \
      "$( ((other > NOISE_PCT)) && echo "⚠ $other" || echo "$other")"
    if ((REPEAT > 1)); then
      printf ' %s–%s (%s%%)%s | %s–%s |' "$lo" "$hi" "$spread" "$( ((spread > SPREAD_PCT)) && echo " ⚠" || true)" "$clo" "$chi"
    fi
    printf '\n'
  done
  echo
  if ((NOISY > 0)); then
    echo "**Warning:** $NOISY of ${#ROWS[@]} rows are flagged ⚠ above: the machine was busy with other work"
    echo "or the runs disagreed. Treat differences smaller than the run-to-run range as noise."
    echo
  fi
  echo "Machine: $NPROC cores, $CPU_MODEL, $MEM_TOTAL RAM, kernel $KERNEL${VIRT:+, virtualization: $VIRT}."
  echo "Versions: $V_NGINX, $V_HAPROXY, $V_CADDY, $V_WRK, ingress-agent at \`$GIT_REV\` (Release)."
  echo
  echo "Raw wrk outputs: \`bench/results/raw/\` (not committed); machine-readable: \`bench/results/latest.json\`."
  echo "<!-- END BENCH RESULTS -->"
} >"$SECTION"

mkdir -p "$(dirname "$DOC")"
if [[ ! -f $DOC ]]; then
  cat >"$DOC" <<'EOF'
# Benchmarks

Side-by-side HTTP/1.1 reverse-proxy benchmark of Sluice against nginx, HAProxy and Caddy, produced
by `bench/run.sh`. Method, pinning and caveats: `bench/README.md`.

EOF
fi
if grep -q '^<!-- BEGIN BENCH RESULTS' "$DOC" && grep -q '^<!-- END BENCH RESULTS' "$DOC"; then
  awk -v sect="$SECTION" '
    /^<!-- BEGIN BENCH RESULTS/ { while ((getline l < sect) > 0) print l; skip = 1; next }
    /^<!-- END BENCH RESULTS/ { skip = 0; next }
    !skip { print }' "$DOC" >"$WORK/doc.new"
  cat "$WORK/doc.new" >"$DOC"
else
  { echo; cat "$SECTION"; } >>"$DOC"
fi

log "wrote $DOC, $RESULTS/latest.json and raw outputs in $RAW"
sed -n '/^| proxy | conns | req\/s/,/^$/p' "$SECTION"

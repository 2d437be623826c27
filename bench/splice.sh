#!/usr/bin/env bash
# Sluice kernel-splice benchmark: bytes over a plain TCP route, client -> ingress-agent -> server,
# with each --splice strategy (sockmap, pipe, copy, and auto), against no proxy at all (direct).
#
#   sudo bench/splice.sh                                # defaults: about 4 minutes
#   sudo BENCH_REPEAT=1 BENCH_MSG_SECONDS=5 bench/splice.sh
#   sudo BENCH_MODES="copy sockmap" bench/splice.sh     # a subset (ratios need direct / copy)
#
# The load is bench/tools/flowbench.cpp (sluice-flowbench): one process, pinned to the client
# core, runs the server and the client on two threads, so one clock and one /proc/stat bracket
# cover the whole path. Two workloads per mode:
#   bulk  one connection, BENCH_BULK_BYTES client -> server as fast as possible (MiB/s)
#   msgs  BENCH_MSG_CONNS connections, each ping-ponging BENCH_MSG_BYTES-byte messages for
#         BENCH_MSG_SECONDS; a round trip counts as 2 messages (request and echo)
# CPU is the whole machine's busy time from /proc/stat over the measured interval (kernel
# threads, workqueues and softirq included: sockmap moves bytes there, not in the agent).
#
# Environment (all optional):
#   SLUICE_AGENT       path to a built ingress-agent (default: build one in Release)
#   SLUICE_FLOWBENCH   path to a built sluice-flowbench (default: next to SLUICE_AGENT's build,
#                      else built in SLUICE_BUILD_DIR)
#   SLUICE_BUILD_DIR   where to build (default: ${TMPDIR:-/tmp}/sluice-bench-build)
#   BENCH_MODES        which modes, in order (default "direct sockmap pipe copy auto")
#   BENCH_BULK_BYTES   bytes per bulk run (default 2147483648 = 2 GiB; K/M/G suffixes allowed)
#   BENCH_MSG_CONNS    connections in the msgs runs (default 1000)
#   BENCH_MSG_SECONDS  measured seconds per msgs run (default 8)
#   BENCH_MSG_WARMUP   unmeasured ping-pong seconds before that (default 1)
#   BENCH_MSG_BYTES    message size (default 100)
#   BENCH_REPEAT       runs per mode and workload, interleaved; the median run is reported
#                      (default 3)
#   BENCH_WORKERS      agent --workers (default 1: it is pinned to one core)
#   BENCH_FLOW_BUDGET  agent --splice-flow-budget BYTES (default: 1 GiB for sockmap, so bulk
#                      measures the redirect rather than the reset of a flow over budget)
#   BENCH_SCHED        "off" (default), "nice" (nice -20) or "fifo" (SCHED_FIFO 10) for the agent
#                      and flowbench. Not fifo by default, unlike run.sh: sockmap's redirects run
#                      in kernel workqueues (normal-priority kworkers), which real-time tasks
#                      would starve, biasing the comparison against sockmap.
#   BENCH_NOISE_PCT    flag a run when other processes used more than this % of a core (default 10)
#   BENCH_QUIET_WAIT   before each run, wait up to this many seconds for the machine to be quiet
#                      (under BENCH_NOISE_PCT % of a core busy over 1 s; default 0: do not wait).
#                      For shared machines, where a build next door ruins the CPU figures.
#   BENCH_SPREAD_PCT   flag a cell whose runs varied by more than this % of the median (default 15)
#   BENCH_PROXY_CPU    core the agent is pinned to (default 0)
#   BENCH_CLIENT_CPU   core flowbench (client and server) is pinned to (default 1)
#   BENCH_DOC          Markdown file whose marked section gets the table (default docs/benchmarks.md)
#   BENCH_RESULTS_DIR  where splice-latest.json and raw/splice/ go (default bench/results)
#   BENCH_KEEP_WORKDIR 1 to keep the temporary directory (manifests, agent logs) for inspection
#
# Needs root (the agent loads BPF), bpffs at /sys/fs/bpf, python3, curl, taskset, ss. Everything
# listens on 127.0.0.1 on ports picked here, below the ephemeral range. Every process this script
# starts is stopped by pid on exit. This script only orchestrates: each run leaves one JSON record
# (flowbench's line plus the mode, the repetition and the agent's /debug/state) in
# bench/results/raw/splice/runs.jsonl, and bench/report.py turns the records into
# docs/benchmarks.md (between the splice-results markers) and bench/results/splice-latest.json.
# Agent logs stay in bench/results/raw/splice/ (gitignored).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

CMD_LINE=""
for v in SLUICE_AGENT SLUICE_FLOWBENCH BENCH_MODES BENCH_BULK_BYTES BENCH_MSG_CONNS \
         BENCH_MSG_SECONDS BENCH_MSG_WARMUP BENCH_MSG_BYTES BENCH_REPEAT BENCH_WORKERS \
         BENCH_FLOW_BUDGET BENCH_SCHED BENCH_QUIET_WAIT BENCH_PROXY_CPU BENCH_CLIENT_CPU; do
  if [[ -n ${!v:-} ]]; then
    CMD_LINE+="$v=$(printf '%q' "${!v}") "
  fi
done
CMD_LINE+="bench/splice.sh${*:+ $*}"

MODES=${BENCH_MODES:-"direct sockmap pipe copy auto"}
BULK_BYTES=${BENCH_BULK_BYTES:-2147483648}
MSG_CONNS=${BENCH_MSG_CONNS:-1000}
MSG_SECONDS=${BENCH_MSG_SECONDS:-8}
MSG_WARMUP=${BENCH_MSG_WARMUP:-1}
MSG_BYTES=${BENCH_MSG_BYTES:-100}
REPEAT=${BENCH_REPEAT:-3}
WORKERS=${BENCH_WORKERS:-1}
FLOW_BUDGET=${BENCH_FLOW_BUDGET:-}
NOISE_PCT=${BENCH_NOISE_PCT:-10}
QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
SPREAD_PCT=${BENCH_SPREAD_PCT:-15}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
DOC=${BENCH_DOC:-$REPO/docs/benchmarks.md}
RESULTS=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}
RAW=$RESULTS/raw/splice

BENCH_TAG=splice
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
PIN_DIR=""
bench_cleanup_hook() { # the bench's own pin directory, never a running agent's
  if [[ $PIN_DIR == /sys/fs/bpf/sluice-bench-* && -d $PIN_DIR ]]; then
    rm -rf "$PIN_DIR" || true
  fi
}

# ---------------------------------------------------------------------------------------------
# Preflight
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found (Debian: apt-get install $2)"; }
need python3 python3
need curl curl
need taskset util-linux
need ss iproute2
need pgrep procps

PROXIED=0
for m in $MODES; do
  case $m in
    direct) ;;
    sockmap | pipe | copy | auto) PROXIED=1 ;;
    *) die "unknown mode '$m' in BENCH_MODES (known: direct sockmap pipe copy auto)" ;;
  esac
done
if ((PROXIED)); then
  [[ $EUID -eq 0 ]] || die "run as root: the agent loads BPF programs (sudo bench/splice.sh)"
  [[ $(stat -f -c %T /sys/fs/bpf 2>/dev/null || true) == bpf_fs ]] ||
    die "bpffs is not mounted at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)"
fi
NPROC=$(nproc)
((NPROC >= 2)) || die "need at least 2 cores (agent on one, flowbench on another); have $NPROC"
((PROXY_CPU < NPROC && CLIENT_CPU < NPROC)) || die "BENCH_PROXY_CPU/BENCH_CLIENT_CPU out of range"
for v in MSG_CONNS MSG_BYTES REPEAT WORKERS NOISE_PCT SPREAD_PCT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ || (${!v} == 0 && $v == *PCT) ]] || die "bad BENCH_$v '${!v}'"
done
[[ $BULK_BYTES =~ ^[1-9][0-9]*[KMG]?$ ]] || die "bad BENCH_BULK_BYTES '$BULK_BYTES'"
case $BULK_BYTES in
  *K) BULK_BYTES=$((${BULK_BYTES%K} << 10)) ;;
  *M) BULK_BYTES=$((${BULK_BYTES%M} << 20)) ;;
  *G) BULK_BYTES=$((${BULK_BYTES%G} << 30)) ;;
esac
BULK_HUMAN=$(awk -v b="$BULK_BYTES" 'BEGIN {
  if (b >= 2^30) printf "%g GiB", b / 2^30; else if (b >= 2^20) printf "%g MiB", b / 2^20; else printf "%d bytes", b }')
[[ $MSG_SECONDS =~ ^[0-9]+(\.[0-9]+)?$ && $MSG_WARMUP =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
  die "bad BENCH_MSG_SECONDS/BENCH_MSG_WARMUP"
[[ -z $FLOW_BUDGET || $FLOW_BUDGET =~ ^[0-9]+$ ]] || die "bad BENCH_FLOW_BUDGET '$FLOW_BUDGET'"
[[ $QUIET_WAIT =~ ^[0-9]+$ ]] || die "bad BENCH_QUIET_WAIT '$QUIET_WAIT'"

# 1000 connections: 2000 fds in flowbench (both ends), 2000 in the agent.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= 4096)) || die "open-file limit $(ulimit -n) is too low; need >= 4096"

SCHED=${BENCH_SCHED:-off}
set_sched

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-splice.XXXXXX")
mkdir -p "$RAW"

# ---------------------------------------------------------------------------------------------
# Binaries
BUILD_DIR=${SLUICE_BUILD_DIR:-${TMPDIR:-/tmp}/sluice-bench-build}
build_targets() { # build_targets TARGET...: Release build in BUILD_DIR (Ninja when new)
  local gen=() t
  need cmake cmake
  if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
    need ninja ninja-build
    gen=(-G Ninja)
  fi
  log "building $* (Release) in $BUILD_DIR"
  cmake -S "$REPO" -B "$BUILD_DIR" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release >"$WORK/cmake.log" 2>&1 ||
    { tail -30 "$WORK/cmake.log" >&2; die "cmake configure failed"; }
  for t in "$@"; do
    cmake --build "$BUILD_DIR" --target "$t" -j "$NPROC" >>"$WORK/build.log" 2>&1 ||
      { tail -40 "$WORK/build.log" >&2; die "building $t failed"; }
  done
}

AGENT=""
FLOWBENCH=${SLUICE_FLOWBENCH:-}
TO_BUILD=()
if ((PROXIED)); then
  if [[ -n ${SLUICE_AGENT:-} ]]; then
    AGENT=$SLUICE_AGENT
    [[ -x $AGENT ]] || die "SLUICE_AGENT=$AGENT is not an executable"
    if [[ -z $FLOWBENCH && -x $(dirname "$AGENT")/../../bench/sluice-flowbench ]]; then
      FLOWBENCH=$(dirname "$AGENT")/../../bench/sluice-flowbench
    fi
  else
    TO_BUILD+=(ingress-agent)
  fi
fi
[[ -n $FLOWBENCH ]] || TO_BUILD+=(sluice-flowbench)
if ((${#TO_BUILD[@]})); then
  build_targets "${TO_BUILD[@]}"
  [[ -n $AGENT || $PROXIED == 0 ]] || AGENT=$BUILD_DIR/userspace/app/ingress-agent
  [[ -n $FLOWBENCH ]] || FLOWBENCH=$BUILD_DIR/bench/sluice-flowbench
fi
[[ -x $FLOWBENCH ]] || die "sluice-flowbench not found at $FLOWBENCH"
if ((PROXIED)); then
  [[ -x $AGENT ]] || die "ingress-agent not found at $AGENT"
  "$AGENT" --help >"$WORK/agent-help.txt" 2>&1 || true
  grep -q -- '--splice' "$WORK/agent-help.txt" ||
    die "$AGENT has no --splice option (this benchmark needs the splice strategies of issue 3)"
  # Our own pin directory, so a benchmark agent never shares (or unpins) the maps of an agent
  # already running on this machine.
  if grep -q -- '--bpf-pin-dir' "$WORK/agent-help.txt"; then
    PIN_DIR=/sys/fs/bpf/sluice-bench-$$
  fi
fi

# ---------------------------------------------------------------------------------------------
# What is the same for every run: report.py adds the date, the commit and the machine.
report() { python3 "$BENCH_DIR/report.py" "$@"; }
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
write_meta() {
  local list modes
  read -r -a list <<<"$MODES"
  modes=$(printf '"%s",' "${list[@]}") # mode names are checked above: no escaping needed
  report meta --out "$RAW/meta.json" --command "$CMD_LINE" --repo "$REPO" \
    "settings.modes:=[${modes%,}]" "settings.bulk_bytes:=$BULK_BYTES" \
    "settings.msg_connections:=$MSG_CONNS" "settings.msg_seconds:=$MSG_SECONDS" \
    "settings.msg_warmup_seconds:=$MSG_WARMUP" "settings.msg_bytes:=$MSG_BYTES" \
    "settings.repeat:=$REPEAT" "settings.agent_workers:=$WORKERS" \
    "settings.splice_flow_budget=${FLOW_BUDGET:-default (sockmap: 1 GiB)}" \
    "settings.proxy_cpu:=$PROXY_CPU" "settings.client_cpu:=$CLIENT_CPU" \
    "settings.scheduling=${SCHED_DESC:-normal priority}" \
    "settings.messages_counted=2 per round trip (request and echo)" \
    "settings.cpu=/proc/stat busy jiffies (user+nice+system+irq+softirq+steal) of all CPUs over the measured interval" \
    "settings.noise_percent:=$NOISE_PCT" "settings.spread_percent:=$SPREAD_PCT"
}

# Busy % of one core, whole machine, over the next second (nothing of ours runs meanwhile).
busy_pct_1s() {
  local b0 t0 b1 t1
  read -r b0 t0 < <(awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat)
  sleep 1
  read -r b1 t1 < <(awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat)
  echo $(((b1 - b0) * 100 * NPROC / (t1 - t0 > 0 ? t1 - t0 : 1)))
}
QUIET_WAITED=0
wait_quiet() {
  ((QUIET_WAIT > 0)) || return 0
  local start=$SECONDS pct
  while pct=$(busy_pct_1s); ((pct > NOISE_PCT)); do
    if ((SECONDS - start >= QUIET_WAIT)); then
      log "machine still busy ($pct% of a core) after ${QUIET_WAIT}s; running anyway"
      return 0
    fi
  done
  QUIET_WAITED=$((QUIET_WAITED + SECONDS - start))
}

# ---------------------------------------------------------------------------------------------
# One run: for a proxied mode a fresh agent with one TCP route to flowbench's server, then one
# flowbench run (client and server in one process on the client core). report.py appends its
# JSON line, plus the mode, the repetition and the agent's /debug/state "splice" object, to
# $RAW/runs.jsonl.
FAILED=0
do_run() { # do_run MODE WORKLOAD REP
  local mode=$1 workload=$2 rep=$3 name run_dir server_port tcp_port http_port admin_port
  local agent_pid="" rc args=() summary
  name=$mode-$workload-r$rep
  run_dir=$WORK/$name
  mkdir -p "$run_dir"
  pick_port server_port
  args=(--listen "127.0.0.1:$server_port" --label "$mode")
  if [[ $mode != direct ]]; then
    pick_port tcp_port
    pick_port http_port
    pick_port admin_port
    mkdir -p "$run_dir/manifests"
    render "$BENCH_DIR/splice-manifests.yaml" "$run_dir/manifests/bench.yaml" \
      "TCP_PORT=$tcp_port" "SERVER_PORT=$server_port"
    local agent_args=(--manifests "$run_dir/manifests" --listen-http "127.0.0.1:$http_port"
      --admin "127.0.0.1:$admin_port" --workers "$WORKERS" --splice="$mode"
      --tcp-services sluice-system/sluice-tcp-services --log-level warn)
    [[ -z $PIN_DIR ]] || agent_args+=(--bpf-pin-dir "$PIN_DIR")
    if [[ -n $FLOW_BUDGET ]]; then
      agent_args+=(--splice-flow-budget "$FLOW_BUDGET")
    elif [[ $mode == sockmap ]]; then
      # A sockmap flow whose reader falls behind by the budget is reset (docs/splice.md), and a
      # bulk sender outruns the kernel's redirect worker: measure the redirect itself.
      agent_args+=(--splice-flow-budget 1073741824)
    fi
    start_bg "$run_dir/agent.log" "${PRIO[@]}" taskset -c "$PROXY_CPU" "$AGENT" "${agent_args[@]}"
    agent_pid=$START_PID
    if ! wait_http "http://127.0.0.1:$admin_port/readyz" 20 "$agent_pid"; then
      tail -40 "$run_dir/agent.log" >&2
      die "$mode: ingress-agent did not become ready (admin /readyz); log: $run_dir/agent.log"
    fi
    args+=(--connect "127.0.0.1:$tcp_port" --proxy-pid "$agent_pid")
  fi
  case $workload in
    bulk) args+=(--bytes "$BULK_BYTES") ;;
    msgs) args+=(--conns "$MSG_CONNS" --seconds "$MSG_SECONDS" --warmup "$MSG_WARMUP" --size "$MSG_BYTES") ;;
  esac

  wait_quiet
  log "$mode $workload, run $rep/$REPEAT"
  rc=0
  "${PRIO[@]}" taskset -c "$CLIENT_CPU" "$FLOWBENCH" "$workload" "${args[@]}" \
    >"$run_dir/flowbench.json" 2>"$run_dir/flowbench.err" &
  local fpid=$!
  STARTED_PIDS+=("$fpid")
  wait "$fpid" || rc=$?
  forget_pid "$fpid"
  if [[ -n $agent_pid ]]; then
    if alive "$agent_pid"; then
      curl -s --max-time 5 -o "$run_dir/state.json" "http://127.0.0.1:$admin_port/debug/state" || true
    else
      log "$mode $workload: the agent died during the run (log kept in $RAW/$name.agent.log)"
    fi
    stop_pid "$agent_pid"
    cp "$run_dir/agent.log" "$RAW/$name.agent.log"
  fi
  local status=0 # 3: the run failed (summary says why); anything else: report.py itself failed
  summary=$(report splice-record "$RAW/runs.jsonl" --mode "$mode" --workload "$workload" \
    --run "$rep" --flowbench "$run_dir/flowbench.json" --stderr "$run_dir/flowbench.err" \
    --rc "$rc" --state "$run_dir/state.json") || status=$?
  case $status in
    0) log "  $summary" ;;
    3)
      FAILED=$((FAILED + 1))
      log "$mode $workload run $rep FAILED: $summary"
      if [[ -n $agent_pid ]]; then
        log "  agent log ($RAW/$name.agent.log), last lines:"
        tail -5 "$RAW/$name.agent.log" >&2 || true
      fi
      ;;
    *) die "$mode $workload run $rep: recording the run failed" ;;
  esac
}

find "$RAW" -maxdepth 1 -type f -delete # raw/splice holds the latest run's outputs only
write_meta
log "modes: $MODES; bulk $BULK_HUMAN; msgs $MSG_CONNS conns x $MSG_BYTES B for ${MSG_SECONDS}s (+${MSG_WARMUP}s warm-up); repeat $REPEAT; load average $LOADAVG"
# Interleaved (all modes, then all again) so slow drifts hit every mode alike.
for ((rep = 1; rep <= REPEAT; rep++)); do
  for workload in bulk msgs; do
    for mode in $MODES; do
      do_run "$mode" "$workload" "$rep"
    done
  done
done

# Statistics (median run per mode and workload, spread, ratios against direct and copy, the
# targets), splice-latest.json and the Markdown section.
report splice-report --meta "$RAW/meta.json" --records "$RAW/runs.jsonl" \
  --json "$RESULTS/splice-latest.json" --doc "$DOC" ||
  die "summarizing the runs failed (records in $RAW/runs.jsonl)"
log "wrote $DOC (splice-results section), $RESULTS/splice-latest.json and agent logs in $RAW"
((FAILED == 0)) || die "$FAILED run(s) failed (see above and $RAW)"

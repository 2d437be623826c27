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
# Needs root (the agent loads BPF), bpffs at /sys/fs/bpf, jq, curl, taskset, ss. Everything
# listens on 127.0.0.1 on ports picked here, below the ephemeral range. Every process this script
# starts is stopped by pid on exit. Results: docs/benchmarks.md (between the splice-results
# markers), bench/results/splice-latest.json, per-run JSON and agent logs in
# bench/results/raw/splice/ (gitignored).
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
need jq jq
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
# Machine description
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
[[ -n $CPU_MODEL ]] || CPU_MODEL=$(awk -F': *' '/^(Hardware|cpu model|uarch)/ {print $2; exit}' /proc/cpuinfo)
KERNEL=$(uname -srm)
MEM_TOTAL=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
VIRT=$(systemd-detect-virt 2>/dev/null || true)
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $GIT_REV != unknown && -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  GIT_REV+="+dirty"
fi
DATE_UTC=$(date -u '+%Y-%m-%d %H:%M UTC')
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

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
# flowbench run (client and server in one process on the client core). Its JSON line, plus the
# mode, the repetition and the agent's /debug/state "splice" object, lands in $RAW.
FAILED=0
splice_note() { [[ $1 == null ]] || echo ", splice $(jq -c . <<<"$1")"; }
do_run() { # do_run MODE WORKLOAD REP
  local mode=$1 workload=$2 rep=$3 name run_dir server_port tcp_port http_port admin_port
  local agent_pid="" state=null out rc args=()
  name=$mode-$workload-r$rep
  run_dir=$WORK/$name
  out=$RAW/$name.json
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
      state=$(curl -s --max-time 5 "http://127.0.0.1:$admin_port/debug/state" | jq -c '.splice // null' 2>/dev/null || true)
      [[ -n $state ]] || state=null
    else
      log "$mode $workload: the agent died during the run (log kept in $RAW/$name.agent.log)"
    fi
    stop_pid "$agent_pid"
    cp "$run_dir/agent.log" "$RAW/$name.agent.log"
  fi
  local line
  line=$(tail -1 "$run_dir/flowbench.json" 2>/dev/null || true)
  jq -e . >/dev/null 2>&1 <<<"$line" ||
    line=$(jq -cn --arg w "$workload" --arg e "flowbench exited $rc without a result: $(tail -3 "$run_dir/flowbench.err" 2>/dev/null)" \
      '{ok: false, mode: $w, error: $e}')
  jq -c --arg m "$mode" --argjson r "$rep" --argjson s "$state" \
    '. + {bench_mode: $m, run: $r, splice_state: $s}' <<<"$line" >"$out"
  if [[ $(jq -r .ok "$out") != true ]]; then
    FAILED=$((FAILED + 1))
    log "$mode $workload run $rep FAILED: $(jq -r '.error // .first_error // "?"' "$out")"
    if [[ -n $agent_pid ]]; then
      log "  agent log ($RAW/$name.agent.log), last lines:"
      tail -5 "$RAW/$name.agent.log" >&2 || true
    fi
  elif [[ $workload == bulk ]]; then
    log "  $(jq -r '"\(.mib_per_s) MiB/s, \(.cpu_seconds) CPU-s (\(.cpu_seconds_per_gib) per GiB; agent \(.cpu_proxy_seconds), flowbench \(.cpu_self_seconds), kernel threads \(.cpu_kernel_threads_seconds)), eof \(.eof)"' "$out")$(splice_note "$state")"
  else
    log "  $(jq -r '"\(.messages_per_s) msgs/s, \(.messages_per_cpu_second) msgs per CPU-s, rtt p50 \(.rtt_p50_us) us p99 \(.rtt_p99_us) us (agent \(.cpu_proxy_seconds), flowbench \(.cpu_self_seconds), kernel threads \(.cpu_kernel_threads_seconds) CPU-s)"' "$out")$(splice_note "$state")"
  fi
}

find "$RAW" -maxdepth 1 -type f -delete # raw/splice holds the latest run's outputs only
log "modes: $MODES; bulk $BULK_HUMAN; msgs $MSG_CONNS conns x $MSG_BYTES B for ${MSG_SECONDS}s (+${MSG_WARMUP}s warm-up); repeat $REPEAT; load average $LOADAVG"
# Interleaved (all modes, then all again) so slow drifts hit every mode alike.
for ((rep = 1; rep <= REPEAT; rep++)); do
  for workload in bulk msgs; do
    for mode in $MODES; do
      do_run "$mode" "$workload" "$rep"
    done
  done
done

# ---------------------------------------------------------------------------------------------
# Summary: per mode and workload the median run (lower median of the successful runs, by MiB/s
# or messages/s), the spread over the runs, ratios against direct and copy, the targets.
mode_list=$(printf '%s\n' $MODES | jq -R . | jq -sc .)
jq -s --argjson modes "$mode_list" --argjson noise "$NOISE_PCT" --argjson spread "$SPREAD_PCT" '
  def metric(w): if w == "bulk" then .mib_per_s else .messages_per_s end;
  def cell(runs; w):
    [runs[] | select(.mode == w)] as $all
    | [$all[] | select(.ok == true)] as $ok
    | ($ok | sort_by(metric(w))) as $s
    | if ($s | length) == 0 then
        {runs: ($all | length), failed: ($all | length),
         error: ([$all[] | .error // .first_error] | map(select(. != null)) | first)}
      else
        $s[(($s | length) - 1) / 2 | floor] as $med
        | ($s | map(metric(w))) as $v
        | ($med.cpu_other_processes_seconds / $med.seconds * 100) as $other
        | $med + {runs: ($all | length), failed: (($all | length) - ($ok | length)),
                  not_eof: ([$ok[] | select(.close != null and .close != "eof")] | length),
                  min: $v[0], max: $v[-1],
                  spread_percent: (if ($med | metric(w)) > 0 then ($v[-1] - $v[0]) / ($med | metric(w)) * 100 else 0 end),
                  other_processes_percent_of_a_core: $other,
                  noisy: ($other > $noise),
                  unsteady: ((($v[-1] - $v[0]) / ([($med | metric(w)), 1e-9] | max) * 100) > $spread)}
      end;
  def ratio(a; b): if a == null or b == null or b == 0 then null else a / b end;
  . as $runs
  | [ $modes[] as $m
      | [$runs[] | select(.bench_mode == $m)] as $r
      | {mode: $m, bulk: cell($r; "bulk"), msgs: cell($r; "msgs"),
         strategies: ([$r[] | .splice_state.strategy? // empty] | unique)} ]
  | map(select(.mode == "direct")) as $direct
  | map(select(.mode == "copy")) as $copy
  | map(. + {
      bulk_vs_direct: ratio(.bulk.mib_per_s; $direct[0].bulk.mib_per_s),
      msgs_vs_direct: ratio(.msgs.messages_per_s; $direct[0].msgs.messages_per_s),
      vs_copy: (if .mode == "direct" or .mode == "copy" or ($copy | length) == 0 then null else {
        bulk_mib_per_s: ratio(.bulk.mib_per_s; $copy[0].bulk.mib_per_s),
        cpu_seconds_per_gib: ratio(.bulk.cpu_seconds_per_gib; $copy[0].bulk.cpu_seconds_per_gib),
        messages_per_cpu_second: ratio(.msgs.messages_per_cpu_second; $copy[0].msgs.messages_per_cpu_second),
        messages_per_s: ratio(.msgs.messages_per_s; $copy[0].msgs.messages_per_s)} end)})
' "$RAW"/*-r*.json >"$WORK/summary.json" || die "summarizing the runs failed (raw results in $RAW)"

AUTO_PICKED=$(jq -r '.[] | select(.mode == "auto") | .strategies | if length == 0 then "unknown" else join(", ") end' "$WORK/summary.json")
TARGETS=$(jq -c '
  (.[] | select(.mode == "auto") | .vs_copy) as $a
  | if $a == null then null else {
      bulk_mib_per_s: {ratio: $a.bulk_mib_per_s, target: ">= 1.1", met: ($a.bulk_mib_per_s != null and $a.bulk_mib_per_s >= 1.1)},
      cpu_seconds_per_gib: {ratio: $a.cpu_seconds_per_gib, target: "<= 0.6", met: ($a.cpu_seconds_per_gib != null and $a.cpu_seconds_per_gib <= 0.6)},
      messages_per_cpu_second: {ratio: $a.messages_per_cpu_second, target: ">= 2", met: ($a.messages_per_cpu_second != null and $a.messages_per_cpu_second >= 2)}} end
' "$WORK/summary.json")
[[ -n $TARGETS ]] || TARGETS=null

json_str() { jq -Rn --arg s "$1" '$s'; }
{
  printf '{\n'
  printf '  "date": %s,\n' "$(json_str "$DATE_UTC")"
  printf '  "command": %s,\n' "$(json_str "$CMD_LINE")"
  printf '  "git": %s,\n' "$(json_str "$GIT_REV")"
  printf '  "machine": {"nproc": %d, "cpu": %s, "kernel": %s, "memory": %s, "virtualization": %s, "loadavg_at_start": %s},\n' \
    "$NPROC" "$(json_str "$CPU_MODEL")" "$(json_str "$KERNEL")" "$(json_str "$MEM_TOTAL")" \
    "$(json_str "${VIRT:-unknown}")" "$(json_str "$LOADAVG")"
  printf '  "settings": {"modes": %s, "bulk_bytes": %d, "msg_connections": %d, "msg_seconds": %s, "msg_warmup_seconds": %s, "msg_bytes": %d, "repeat": %d, "agent_workers": %d, "splice_flow_budget": %s, "proxy_cpu": %d, "client_cpu": %d, "scheduling": %s, "messages_counted": "2 per round trip (request and echo)", "cpu": "/proc/stat busy jiffies (user+nice+system+irq+softirq+steal) of all CPUs over the measured interval"},\n' \
    "$mode_list" "$BULK_BYTES" "$MSG_CONNS" "$MSG_SECONDS" "$MSG_WARMUP" "$MSG_BYTES" \
    "$REPEAT" "$WORKERS" "$(json_str "${FLOW_BUDGET:-default (sockmap: 1 GiB)}")" "$PROXY_CPU" "$CLIENT_CPU" \
    "$(json_str "${SCHED_DESC:-normal priority}")"
  printf '  "auto_picked": %s,\n' "$(json_str "$AUTO_PICKED")"
  printf '  "targets_auto_vs_copy": %s,\n' "$TARGETS"
  printf '  "results": %s,\n' "$(jq -c . "$WORK/summary.json")"
  printf '  "all_runs": %s\n' "$(jq -sc 'sort_by(.run)' "$RAW"/*-r*.json)"
  printf '}\n'
} | jq . >"$RESULTS/splice-latest.json.tmp" || die "writing splice-latest.json failed"
mv "$RESULTS/splice-latest.json.tmp" "$RESULTS/splice-latest.json"

# ---------------------------------------------------------------------------------------------
# Markdown
fmt() { # fmt PRINTF-FORMAT VALUE: "—" for null/empty
  if [[ -z $2 || $2 == null ]]; then echo "—"; else awk -v v="$2" -v f="$1" 'BEGIN { printf f, v }'; fi
}
ratio_cell() { [[ -z $1 || $1 == null ]] && echo "—" || echo "$(fmt %.2f "$1")×"; }
flag_cell() { # value noisy unsteady failed runs not_eof
  local s=$1
  [[ $2 != true ]] || s+=" ⚠noise"
  [[ $3 != true ]] || s+=" ⚠spread"
  [[ $4 == 0 || $4 == null ]] || s+=" ⚠$4/$5 failed"
  [[ ${6:-0} == 0 || $6 == null ]] || s+=" ⚠$6 reset"
  echo "$s"
}
field() { jq -r --arg m "$1" ".[] | select(.mode == \$m) | $2 // \"null\"" "$WORK/summary.json"; }

SECTION=$WORK/section.md
{
  echo "<!-- splice-results:begin -->"
  echo "## Kernel splice on TCP routes: latest results"
  echo
  echo "Generated by \`bench/splice.sh\` on $DATE_UTC at commit \`$GIT_REV\` (load average at start: $LOADAVG) with:"
  echo
  echo '```sh'
  echo "$CMD_LINE"
  echo '```'
  echo
  echo "Bytes over a plain TCP route (tcp-services ConfigMap → Service → EndpointSlice) on loopback:"
  echo "\`direct\` is the client connecting straight to the server; the other rows go through"
  echo "\`ingress-agent --splice=<mode> --workers $WORKERS\` pinned to core $PROXY_CPU. Client and server are one"
  echo "\`sluice-flowbench\` process pinned to core $CLIENT_CPU${SCHED_DESC:+, both at $SCHED_DESC}; a fresh agent per run."
  echo "**bulk**: one connection, $BULK_HUMAN client → server, timed from the first write to the"
  echo "last byte received, count and content checked. **msgs**: $MSG_CONNS connections ping-ponging"
  echo "$MSG_BYTES-byte messages for ${MSG_SECONDS} s after a ${MSG_WARMUP} s warm-up; **msgs/s counts both directions: one round trip"
  echo "= 2 messages**. **CPU** is the whole machine's busy time (/proc/stat user+nice+system+irq+softirq+steal, all"
  echo "cores) over the measured interval, so kernel threads, workqueues and softirq count, not only the"
  echo "agent. Each cell is the median of $REPEAT run(s), interleaved; all runs are in \`bench/results/splice-latest.json\`."
  echo
  echo "| mode | bulk MiB/s | vs direct | CPU s/GiB | msgs/s (2 per round trip) | msgs per CPU-s | vs copy: MiB/s | vs copy: CPU s/GiB | vs copy: msgs per CPU-s |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for m in $MODES; do
    label=$m
    [[ $m != auto ]] || label="auto (→ $AUTO_PICKED)"
    bulk=$(flag_cell "$(fmt %.0f "$(field "$m" .bulk.mib_per_s)")" "$(field "$m" .bulk.noisy)" \
      "$(field "$m" .bulk.unsteady)" "$(field "$m" .bulk.failed)" "$(field "$m" .bulk.runs)" \
      "$(field "$m" .bulk.not_eof)")
    msgs=$(flag_cell "$(fmt %.0f "$(field "$m" .msgs.messages_per_s)")" "$(field "$m" .msgs.noisy)" \
      "$(field "$m" .msgs.unsteady)" "$(field "$m" .msgs.failed)" "$(field "$m" .msgs.runs)")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$bulk" \
      "$(ratio_cell "$(field "$m" .bulk_vs_direct)")" "$(fmt %.3f "$(field "$m" .bulk.cpu_seconds_per_gib)")" \
      "$msgs" "$(fmt %.0f "$(field "$m" .msgs.messages_per_cpu_second)")" \
      "$(ratio_cell "$(field "$m" .vs_copy.bulk_mib_per_s)")" "$(ratio_cell "$(field "$m" .vs_copy.cpu_seconds_per_gib)")" \
      "$(ratio_cell "$(field "$m" .vs_copy.messages_per_cpu_second)")"
  done
  echo
  if [[ " $MODES " == *" auto "* ]]; then
    echo "**auto picked: \`$AUTO_PICKED\`** (\`splice.strategy\` in the agent's \`/debug/state\`, read after each auto run)."
    if [[ $TARGETS != null ]]; then
      target_line() { # key label
        local r met
        r=$(jq -r ".$1.ratio // \"null\"" <<<"$TARGETS")
        met=$(jq -r ".$1.met" <<<"$TARGETS")
        printf '%s %s: %s (%s)' "$2" "$(jq -r ".$1.target" <<<"$TARGETS")" "$(ratio_cell "$r")" \
          "$([[ $met == true ]] && echo met || echo "**not met**")"
      }
      echo "Targets, auto vs copy: $(target_line bulk_mib_per_s "bulk MiB/s"); $(target_line cpu_seconds_per_gib "CPU s/GiB");"
      echo "$(target_line messages_per_cpu_second "small messages per CPU-second")."
    fi
    echo
  fi
  for m in $MODES; do
    [[ $m == direct || $m == auto ]] && continue
    s=$(field "$m" '.strategies | join(", ")')
    if [[ -n $s && $s != "$m" ]]; then
      echo "⚠ \`--splice=$m\` ran as \`${s:-unknown}\` according to /debug/state."
      echo
    fi
  done
  echo "Where the CPU went in the reported runs (CPU-seconds over the measured interval; \"rest\" is"
  echo "interrupt and softirq time not charged to any task; \"other %\" is unrelated processes, as % of a"
  echo "core, flagged ⚠noise above $NOISE_PCT%):"
  echo
  echo "| mode | workload | seconds | all CPU s | agent | flowbench | kernel threads | rest | other % |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for m in $MODES; do
    for w in bulk msgs; do
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$m" "$w" \
        "$(fmt %.2f "$(field "$m" ".$w.seconds")")" "$(fmt %.2f "$(field "$m" ".$w.cpu_seconds")")" \
        "$(fmt %.2f "$(field "$m" ".$w.cpu_proxy_seconds")")" "$(fmt %.2f "$(field "$m" ".$w.cpu_self_seconds")")" \
        "$(fmt %.2f "$(field "$m" ".$w.cpu_kernel_threads_seconds")")" "$(fmt %.2f "$(field "$m" ".$w.cpu_unattributed_seconds")")" \
        "$(fmt %.0f "$(field "$m" ".$w.other_processes_percent_of_a_core")")"
    done
  done
  echo
  if ((FAILED > 0)); then
    echo "**$FAILED run(s) failed** (⚠ n/m failed: the cell is the median of the others); their errors:"
    echo
    jq -r 'select(.ok != true) | "- \(.bench_mode) \(.mode) run \(.run): \(.error // .first_error)"' "$RAW"/*-r*.json
    echo
  fi
  if jq -e 'select(.ok == true and .close != null and .close != "eof")' "$RAW"/*-r*.json >/dev/null 2>&1; then
    echo "⚠ reset: every byte arrived, but the stream then ended with a reset instead of an EOF."
    echo
  fi
  echo "Machine: $NPROC cores, $CPU_MODEL, $MEM_TOTAL RAM, kernel $KERNEL${VIRT:+, virtualization: $VIRT}."
  echo "Method and caveats: \`bench/README.md\` (*Kernel splice*)."
  echo "<!-- splice-results:end -->"
} >"$SECTION"

mkdir -p "$(dirname "$DOC")"
[[ -f $DOC ]] || printf '# Benchmarks\n' >"$DOC"
if grep -q '^<!-- splice-results:begin -->' "$DOC" && grep -q '^<!-- splice-results:end -->' "$DOC"; then
  awk -v sect="$SECTION" '
    /^<!-- splice-results:begin -->/ { while ((getline l < sect) > 0) print l; skip = 1; next }
    /^<!-- splice-results:end -->/ { skip = 0; next }
    !skip { print }' "$DOC" >"$WORK/doc.new"
  cat "$WORK/doc.new" >"$DOC"
else
  { echo; cat "$SECTION"; } >>"$DOC"
fi

log "wrote $DOC (splice-results section), $RESULTS/splice-latest.json and per-run files in $RAW"
sed -n '/^| mode | bulk/,/^$/p' "$SECTION"
grep '^\*\*auto picked\|^Targets\|^small' "$SECTION" || true
((FAILED == 0)) || die "$FAILED run(s) failed (see above and $RAW)"

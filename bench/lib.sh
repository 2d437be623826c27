# Shared by bench/run.sh and bench/splice.sh: logging, process bookkeeping (every pid started is
# stopped by pid on exit), free loopback ports, template rendering and readiness polling.
# Source it after setting BENCH_TAG (the log prefix). A script that has more to clean up on exit
# defines bench_cleanup_hook before it exits.
# shellcheck shell=bash

log() { printf '[%s %(%H:%M:%S)T] %s\n' "$BENCH_TAG" -1 "$*" >&2; }
die() {
  printf '\n[%s] FATAL: %s\n' "$BENCH_TAG" "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Process bookkeeping and cleanup: every pid we start is recorded and stopped by pid.
STARTED_PIDS=()
WORK=""

descendants() { # pid and all its descendants, parents first
  local p=$1 c
  echo "$p"
  for c in $(pgrep -P "$p" 2>/dev/null || true); do
    descendants "$c"
  done
}

alive() { # running (not exited, not a zombie awaiting wait)
  local line
  line=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  line=${line##*) }
  [[ ${line:0:1} != Z ]]
}

forget_pid() { # drop a pid we reaped from the cleanup list, so a reused pid is never signalled
  local i
  for i in "${!STARTED_PIDS[@]}"; do
    [[ ${STARTED_PIDS[i]} != "$1" ]] || unset 'STARTED_PIDS[i]'
  done
}

stop_pid() { # stop one started process (and its children) by pid: TERM, then KILL after 5 s
  local pid=$1 tree i
  [[ -n $pid ]] || return 0
  if alive "$pid"; then
    tree=$(descendants "$pid")
    kill -TERM $tree 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    kill -KILL $tree 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${STARTED_PIDS[@]}"; do
    stop_pid "$pid" || true
  done
  if declare -F bench_cleanup_hook >/dev/null; then
    bench_cleanup_hook || true
  fi
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ ${BENCH_KEEP_WORKDIR:-0} == 1 || $rc -ne 0 ]]; then
      log "work directory kept: $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_bg() { # start_bg LOGFILE CMD...: start in background, record pid in START_PID
  local logfile=$1
  shift
  "$@" >"$logfile" 2>&1 &
  START_PID=$!
  STARTED_PIDS+=("$START_PID")
}

# ---------------------------------------------------------------------------------------------
# Ports: random, free (nothing bound or connected on them), below the ephemeral range so the
# thousands of client/upstream connections can never collide with a listener.
read -r EPH_LO _ </proc/sys/net/ipv4/ip_local_port_range
PORT_HI=$((EPH_LO > 12000 ? EPH_LO - 1 : 60999))
PORT_LO=$((EPH_LO > 12000 ? 10000 : 61000))
PORT_HI=$((PORT_HI > 65535 ? 65535 : PORT_HI))
declare -A USED_PORTS=()
pick_port() { # pick_port VAR
  local p i
  for ((i = 0; i < 500; i++)); do
    p=$((PORT_LO + (RANDOM * 32768 + RANDOM) % (PORT_HI - PORT_LO + 1)))
    [[ -z ${USED_PORTS[$p]:-} ]] || continue
    if [[ -z $(ss -Htan "( sport = :$p )" 2>/dev/null) ]]; then
      USED_PORTS[$p]=1
      printf -v "$1" '%s' "$p"
      return 0
    fi
  done
  die "could not find a free loopback port"
}

render() { # render TEMPLATE OUT KEY=VALUE...
  local tmpl=$1 out=$2 kv expr=()
  shift 2
  for kv in "$@"; do
    expr+=(-e "s|@${kv%%=*}@|${kv#*=}|g")
  done
  sed "${expr[@]}" "$tmpl" >"$out"
  if grep -q '@[A-Z_]\+@' "$out"; then
    die "unsubstituted placeholder left in $out"
  fi
}

wait_http() { # wait_http URL SECONDS PID: until the URL answers 200 (or the process dies)
  local url=$1 secs=$2 pid=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    alive "$pid" || return 1
    if [[ $(curl -s -k -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null || true) == 200 ]]; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# Sets PRIO (a command prefix) and SCHED_DESC from SCHED ("off", "nice" or "fifo"), and checks
# that this user may run at that priority.
set_sched() {
  case $SCHED in
    nice) PRIO=(nice -n -20) SCHED_DESC="nice -20" ;;
    fifo) PRIO=(chrt -f 10) SCHED_DESC="SCHED_FIFO 10" ;;
    off) PRIO=() SCHED_DESC="" ;;
    *) die "bad BENCH_SCHED '$SCHED' (off, nice or fifo)" ;;
  esac
  if ((${#PRIO[@]})); then
    "${PRIO[@]}" true 2>/dev/null || die "cannot run at $SCHED_DESC (not root?); set BENCH_SCHED=off"
  fi
}

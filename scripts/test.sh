#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine, as root: installs dependencies, builds,
# then runs unit, BPF (real kernel) and integration tests (real agent, real backends), the API
# client against a fake API server, the end-to-end tier against a real kube-apiserver, the
# DaemonSet's image, and the unit tests again under ASan+UBSan together with a short libFuzzer
# run of the HTTP parser. The kernel-matrix tier runs the BPF tests again on Debian's older kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/install-deps.sh

jobs=$(nproc)
summary=()
timings=()  # "step: N s", printed before the summary: where a slow machine's minutes went
step_t0=$SECONDS
took() {  # step name: the seconds since the last step ended
  timings+=("$1: $((SECONDS - step_t0)) s")
  step_t0=$SECONDS
}
total_failed=0
total_passed=0
logs=()  # "label=log" of every tier: scripts/failures.py names what failed in them

run_ctest() {  # label, build dir, ctest args...
  local label=$1 dir=$2
  shift 2
  local log="$dir/ctest-$label.log" rc=0
  logs+=("$label=$log")
  ctest --test-dir "$dir" --output-on-failure "$@" 2>&1 | tee "$log" || rc=$?
  took "$label"
  local line passed failed
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -1 || true)
  if [[ -z "$line" ]]; then
    echo "ctest ($label) printed no summary" >&2
    total_failed=$((total_failed + 1))
    return
  fi
  failed=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
  passed=$(( $(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line") - failed ))
  total_failed=$((total_failed + failed))
  total_passed=$((total_passed + passed))
  summary+=("$label: $passed passed, $failed failed")
  return 0
}

run_tier() {  # label, command...: a script that prints "label: N passed, M failed"
  local label=$1 log="build/$1.log"
  shift
  logs+=("$label=$log")
  mkdir -p build  # the checks tier runs before the first build creates it (a clean clone)
  "$@" 2>&1 | tee "$log" || true
  took "$label"
  local line
  line=$(grep -E "^$label: [0-9]+ passed, [0-9]+ failed" "$log" | tail -1 || true)
  if [[ -z "$line" ]]; then
    echo "$label printed no summary" >&2
    total_failed=$((total_failed + 1))
    return 0
  fi
  total_passed=$((total_passed + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")))
  total_failed=$((total_failed + $(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$line")))
  summary+=("$line")
}

# 0. Static checks: the code's shape, its formatting, the benchmark report's tests.
run_tier checks bash tests/checks.sh

# 1. Release build: every target, then unit + BPF + integration tests.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build -j "$jobs"
took "build"
run_ctest unit build -L unit -j "$jobs"
run_ctest bpf build -L bpf
run_ctest integration build -L integration -j 2
run_ctest apiserver build -L apiserver -j 2

# 1b. End-to-end against a real kube-apiserver + etcd (built once from Debian's source package
#     and cached in ~/.cache/sluice; about 10 minutes cold).
run_tier e2e bash tests/e2e/run.sh build/userspace/app/ingress-agent

# The kernel matrix: tests/bpf, tests/cli and the agent on Debian's 5.10, 6.1 and 6.12 under
# qemu TCG and on this kernel (kernel packages cached in ~/.cache/sluice/kernels; about
# 5 minutes). See docs/kernels.md.
run_tier kernels bash tests/kernels/run.sh build

# 1c. The DaemonSet's image, built from Debian's packages and run as PID 1 from its own layer.
run_tier image bash tests/image/run.sh build

# 2. Sanitizers and fuzzing: the pure libraries (parser, k8s, model, router, lb) built with clang,
#    ASan+UBSan, their unit tests, and a short libFuzzer run of the HTTP parser.
#    Line tables only (-g1): the sanitizers' stack traces need no more, and the build takes a
#    quarter less (the API client: 33 → 25 s).
CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS_DEBUG=-g1 -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
  -DSLUICE_UNIT_ONLY=ON -DSLUICE_SANITIZE=ON -DSLUICE_FUZZ=ON >/dev/null
ninja -C build-asan -j "$jobs"
took "build (asan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_ctest asan build-asan -j "$jobs"

echo
# A CI system may keep only the last lines: the names of what failed, and why, go there too.
python3 scripts/failures.py "${logs[@]}" || true
printf 'took %s\n' "${timings[@]}"
echo "took in all: $SECONDS s"
printf '%s\n' "${summary[@]}"
echo "${total_passed} passed, ${total_failed} failed"
[[ $total_failed -eq 0 ]]

#!/usr/bin/env bash
# The static checks of the test command: the code's shape (function sizes, layering, agent.cpp
# as wiring; scripts/check-shape.py), its formatting (clang-format, C++ and BPF styles), and the
# benchmark report's own tests. Layering between libraries is enforced by the build itself
# (cmake/SluiceLibrary.cmake): an include of a library that is not linked does not compile.
set -uo pipefail
cd "$(dirname "$0")/.."
TIER=checks
# shellcheck source=tests/tier.sh
source tests/tier.sh

format_check() {
  local files
  mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.c' '*.h' | grep -v '^vmlinux/')
  clang-format --dry-run -Werror "${files[@]}"
}

check "shape (scripts/check-shape.py)" python3 scripts/check-shape.py
check "clang-format (.clang-format, bpf/.clang-format)" format_check
check "bench/report.py tests" python3 bench/test_report.py
summary

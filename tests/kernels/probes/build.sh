#!/usr/bin/env bash
# Compiles the kernel-matrix feature probes (tests/kernels/probes/*.bpf.c) into OUT_DIR, the same
# way cmake/BpfObject.cmake compiles bpf/ (checked-in vmlinux.h, -Wall -Werror). The payload
# loads them on each kernel; run.sh builds them on the host before booting the guests.
#   bash tests/kernels/probes/build.sh OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:?usage: build.sh OUT_DIR}
case $(uname -m) in
  x86_64) arch=x86 vmlinux=$root/vmlinux/x86_64 ;;
  aarch64) arch=arm64 vmlinux=$root/vmlinux/aarch64 ;;
  *) echo "probes: no checked-in vmlinux.h for $(uname -m)" >&2; exit 1 ;;
esac
clang=$(command -v clang || command -v clang-14) || { echo "probes: clang not found" >&2; exit 1; }
mkdir -p "$out"
for src in "$here"/*.bpf.c; do
  obj=$out/$(basename "$src" .c).o
  # Rebuild only when the source is newer: the tier runs this on every invocation.
  [[ $obj -nt $src && $obj -nt $vmlinux/vmlinux.h ]] && continue
  "$clang" -g -O2 -target bpf -D__TARGET_ARCH_$arch -Wall -Wextra -Werror \
    -Wno-unused-parameter -I"$vmlinux" -c "$src" -o "$obj"
done

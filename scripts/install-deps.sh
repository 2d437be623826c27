#!/usr/bin/env bash
# Installs everything Sluice needs to build, test and benchmark on Debian 12 (bookworm), as root.
# Idempotent: re-running it only installs what is missing.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang llvm libclang-rt-14-dev
  # BPF
  libbpf-dev bpftool libelf-dev zlib1g-dev iproute2
  # userspace libraries
  libboost1.81-dev libboost-json1.81-dev libssl-dev libcli11-dev libspdlog-dev libfmt-dev
  libyaml-cpp-dev libgtest-dev libgmock-dev
  # tests and demo
  curl python3 procps
  # kernel matrix (tests/kernels): Debian's kernels under qemu TCG with a busybox initramfs,
  # their modules (modinfo, depmod), and the DaemonSet's capability set (setpriv, capsh)
  qemu-system-x86 busybox-static kmod xz-utils libcap2-bin util-linux debian-archive-keyring
)
if [[ "${SLUICE_BENCH:-0}" == 1 ]]; then
  packages+=(nginx-light haproxy caddy wrk jq nftables ethtool)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# bpffs for pinned maps
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || echo "note: could not mount bpffs at /sys/fs/bpf" >&2
fi

#!/usr/bin/env bash
# Builds the DaemonSet's image (k8s/base/daemonset.yaml: ghcr.io/sluice-dev/ingress-agent:VERSION) as
# an OCI archive from the build tree and Debian's own packages. It needs no registry, no base
# image and no container runtime:
#   1. ingress-agent and ingressctl from BUILD_DIR (built first if missing);
#   2. the Debian packages owning every shared library they load (ldd), at the installed
#      versions, fetched with `apt-get download` and unpacked with `dpkg-deb -x`. Their copyright
#      files come along; manuals and changelogs do not;
#   3. /etc/passwd, /etc/group, /etc/nsswitch.conf, /tmp, and the loader cache;
#   4. one reproducible layer, packed by scripts/oci-image.py.
# Load it with `podman load -i OUT`, `docker load -i OUT` (Docker 25+) or
# `ctr -n k8s.io images import OUT`; push it with `skopeo copy oci-archive:OUT docker://REF`.
#   scripts/build-image.sh [BUILD_DIR] [OUT]     (defaults: build, BUILD_DIR/sluice-image.tar)
# SLUICE_IMAGE_REF overrides the reference (default: the one in k8s/base/daemonset.yaml).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(realpath -m "${1:-$ROOT/build}")
OUT=$(realpath -m "${2:-$BUILD/sluice-image.tar}")
REF=${SLUICE_IMAGE_REF:-$(sed -n 's/^ *image: *//p' "$ROOT/k8s/base/daemonset.yaml" | head -1)}
VERSION=$(sed -n 's/^project(sluice VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
[[ -n $REF && -n $VERSION ]] || { echo "build-image: no image reference or version" >&2; exit 1; }

BINS=("$BUILD/userspace/app/ingress-agent" "$BUILD/cli/ingressctl")
if [[ ! -x ${BINS[0]} || ! -x ${BINS[1]} ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C "$BUILD" ingress-agent ingressctl
fi

WORK=$(mktemp -d /tmp/sluice-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS/usr/local/bin" "$WORK/debs"

# Which package owns a library: dpkg knows merged-/usr paths under either prefix.
owner() {
  local path=$1 real
  real=$(realpath "$path")
  for p in "$path" "${path#/usr}" "/usr${path}" "$real" "${real#/usr}" "/usr${real}"; do
    dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1-2 && return 0
  done
  echo "build-image: no Debian package owns $path" >&2
  return 1
}
packages=$(for bin in "${BINS[@]}"; do
  ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do owner "$lib"; done
done | sort -u)
echo "build-image: packages: $(echo $packages)"

cd "$WORK/debs"
for pkg in $packages; do
  version=$(dpkg-query -W -f='${Version}' "$pkg")
  # The installed version, which the binaries were linked against; if the archive moved on
  # (a stable update), its current one, which keeps the ABI within a Debian release.
  apt-get download -qq -o APT::Sandbox::User=root "$pkg=$version" 2>/dev/null ||
    apt-get download -qq -o APT::Sandbox::User=root "$pkg" 2>/dev/null || {
    apt-get update -qq  # package lists older than the archive
    apt-get download -qq -o APT::Sandbox::User=root "$pkg"
  }
done
for deb in *.deb; do
  dpkg-deb -x "$deb" "$ROOTFS"
done
cd "$ROOT"

# Only what runs, plus the licences.
rm -rf "$ROOTFS/usr/share/man" "$ROOTFS/usr/share/lintian" "$ROOTFS/usr/share/locale" \
  "$ROOTFS/usr/share/gdb" "$ROOTFS/usr/share/bug"
find "$ROOTFS/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true

install -s -m 0755 "${BINS[@]}" "$ROOTFS/usr/local/bin/"  # debug info stays in BUILD_DIR
mkdir -p "$ROOTFS/etc" "$ROOTFS/tmp" "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/dev"
chmod 1777 "$ROOTFS/tmp"
printf 'root:x:0:0:root:/:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n' \
  >"$ROOTFS/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOTFS/etc/group"
printf 'hosts: files dns\n' >"$ROOTFS/etc/nsswitch.conf"
ldconfig -r "$ROOTFS"

# It must run from its own root before it is packed.
chroot "$ROOTFS" /usr/local/bin/ingress-agent --version >/dev/null
chroot "$ROOTFS" /usr/local/bin/ingressctl --help >/dev/null

python3 "$ROOT/scripts/oci-image.py" "$ROOTFS" "$OUT" --ref "$REF" \
  --arch "$(dpkg --print-architecture)" \
  --entrypoint /usr/local/bin/ingress-agent \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.title=sluice ingress-agent"

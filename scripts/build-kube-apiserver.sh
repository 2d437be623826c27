#!/usr/bin/env bash
# Builds kube-apiserver and kubectl from Debian's `kubernetes` source package (bookworm ships
# 1.20.5+really1.20.2, i.e. 1.20.2) for the
# end-to-end tier that runs the agent against a real API server, and caches them:
#
#   scripts/build-kube-apiserver.sh          # prints the directory holding both binaries
#
# Cache: ${SLUICE_KUBE_CACHE:-$HOME/.cache/sluice}/kube-1.20.2/{kube-apiserver,kubectl}. A cold
# build takes about 6 minutes and 2 GB of space on 2 cores; later runs return at once. As root on
# Debian 12 (it adds a deb-src line for bookworm and installs the build dependencies).
#
# Facts this relies on (see issue 4):
#  - Debian's golang-go (1.19) builds this tree only in GOPATH mode: GO111MODULE=off with the
#    tree at $GOPATH/src/k8s.io/kubernetes.
#  - `make generated_files` must run first (it needs rsync).
#  - The vendored github.com/modern-go/reflect2 v1.0.1 crashes on Go >= 1.18 under load; its
#    files are replaced by Debian's golang-github-modern-go-reflect2-dev (1.0.2).
set -euo pipefail

VERSION=1.20.2
CACHE_ROOT=${SLUICE_KUBE_CACHE:-$HOME/.cache/sluice}
OUT="$CACHE_ROOT/kube-$VERSION"
log() { printf 'build-kube-apiserver: %s\n' "$*" >&2; }

if [[ -x $OUT/kube-apiserver && -x $OUT/kubectl ]]; then
  echo "$OUT"
  exit 0
fi
[[ $(id -u) == 0 ]] || { log "needs root (apt-get)"; exit 1; }

if ! grep -rqsE '^deb-src .*bookworm( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list &&
   ! grep -rqsE '^Types:.*deb-src' /etc/apt/sources.list.d/*.sources; then
  log "adding a deb-src source for bookworm"
  # deb822, with the same Signed-By as Debian's own entry (apt refuses two different values).
  cat >/etc/apt/sources.list.d/sluice-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends dpkg-dev golang-go rsync make \
  golang-github-modern-go-reflect2-dev etcd-server >/dev/null

WORK="$CACHE_ROOT/kube-build"
GOPATH_DIR="$WORK/gopath"
TREE="$GOPATH_DIR/src/k8s.io/kubernetes"
if [[ ! -f $TREE/.sluice-unpacked ]]; then
  rm -rf "$WORK"
  mkdir -p "$WORK/src" "$GOPATH_DIR/src/k8s.io"
  log "fetching the kubernetes $VERSION source package"
  (cd "$WORK/src" && apt-get source -qq kubernetes >/dev/null)
  tree=$(find "$WORK/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
  [[ -n $tree && -d $tree/vendor ]] || { log "no kubernetes source tree with vendor/ in $WORK/src"; exit 1; }
  mv "$tree" "$TREE"
  # reflect2 1.0.1 (vendored) breaks under Go >= 1.18; Debian packages 1.0.2.
  reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [[ -d $reflect2 ]] || { log "missing $reflect2"; exit 1; }
  rm -rf "$TREE/vendor/github.com/modern-go/reflect2"
  mkdir -p "$TREE/vendor/github.com/modern-go/reflect2"
  cp -r "$reflect2"/. "$TREE/vendor/github.com/modern-go/reflect2/"
  touch "$TREE/.sluice-unpacked"
fi

export GO111MODULE=off GOPATH="$GOPATH_DIR" GOCACHE="$WORK/gocache"
cd "$TREE"
if [[ ! -f .sluice-generated ]]; then
  log "make generated_files (a few minutes)"
  make generated_files >"$WORK/generated.log" 2>&1 || { tail -30 "$WORK/generated.log" >&2; exit 1; }
  touch .sluice-generated
fi
mkdir -p "$OUT.tmp"
for cmd in kube-apiserver kubectl; do
  log "go build ./cmd/$cmd"
  go build -o "$OUT.tmp/$cmd" "./cmd/$cmd" >"$WORK/build-$cmd.log" 2>&1 ||
    { tail -30 "$WORK/build-$cmd.log" >&2; exit 1; }
done
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "built $OUT/kube-apiserver and $OUT/kubectl"
echo "$OUT"

#!/usr/bin/env python3
"""Packs a root filesystem directory into an OCI image archive (Python 3 stdlib only).

The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) in one tar, with a
single gzip layer and an image config. `podman load`, `docker load` (Docker 25 and later),
`ctr -n k8s.io images import` and `skopeo copy oci-archive:...` read it. The layer is
reproducible: entries sorted, owner root, fixed timestamps, no gzip name or time.

  oci-image.py ROOTFS OUT.tar --ref NAME:TAG --entrypoint /path [--env K=V ...] [--label K=V ...]
  oci-image.py --verify OUT.tar      (checks every digest and size; prints the image reference)
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

EPOCH = 0  # every mtime in the layer
MEDIA = {
    "index": "application/vnd.oci.image.index.v1+json",
    "manifest": "application/vnd.oci.image.manifest.v1+json",
    "config": "application/vnd.oci.image.config.v1+json",
    "layer": "application/vnd.oci.image.layer.v1.tar+gzip",
}


def layer_tar(rootfs):
    """The rootfs as an uncompressed tar (bytes), entries sorted, normalised ownership/times."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = []
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                paths.append(os.path.join(dirpath, name))
        for path in sorted(paths, key=lambda p: os.path.relpath(p, rootfs)):
            arcname = os.path.relpath(path, rootfs)
            info = tar.gettarinfo(path, arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = EPOCH
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build(args):
    raw = layer_tar(args.rootfs)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=EPOCH, filename="") as g:
        g.write(raw)
    layer = gz.getvalue()
    env = ["PATH=/usr/local/bin:/usr/bin:/bin"] + list(args.env)
    labels = dict(kv.split("=", 1) for kv in args.label)
    config = {
        "architecture": args.arch, "os": "linux",
        "config": {"Entrypoint": [args.entrypoint], "Env": env, "Labels": labels,
                   "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [blob(raw)]},
        "history": [{"created_by": "scripts/build-image.sh"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": MEDIA["manifest"],
        "config": {"mediaType": MEDIA["config"], "digest": blob(config_bytes),
                   "size": len(config_bytes)},
        "layers": [{"mediaType": MEDIA["layer"], "digest": blob(layer), "size": len(layer)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    index = {
        "schemaVersion": 2, "mediaType": MEDIA["index"],
        "manifests": [{"mediaType": MEDIA["manifest"], "digest": blob(manifest_bytes),
                       "size": len(manifest_bytes),
                       "annotations": {"org.opencontainers.image.ref.name": args.ref,
                                       "io.containerd.image.name": args.ref}}],
    }
    files = [("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
             ("index.json", json.dumps(index, sort_keys=True).encode())]
    for data in (layer, config_bytes, manifest_bytes):
        files.append(("blobs/sha256/" + blob(data).split(":", 1)[1], data))
    tmp = args.out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as out:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            out.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
            out.addfile(info, io.BytesIO(data))
    os.replace(tmp, args.out)
    print("%s: %s, layer %d bytes (%d uncompressed), manifest %s" % (
        args.out, args.ref, len(layer), len(raw), blob(manifest_bytes)))


def verify(path):
    with tarfile.open(path) as tar:
        def read(name):
            return tar.extractfile(name).read()

        def check(desc):
            data = read("blobs/sha256/" + desc["digest"].split(":", 1)[1])
            if blob(data) != desc["digest"] or len(data) != desc["size"]:
                raise SystemExit("%s: blob %s does not match its descriptor" % (path, desc["digest"]))
            return data
        if json.loads(read("oci-layout"))["imageLayoutVersion"] != "1.0.0":
            raise SystemExit(path + ": not an OCI image layout")
        index = json.loads(read("index.json"))
        desc = index["manifests"][0]
        manifest = json.loads(check(desc))
        config = json.loads(check(manifest["config"]))
        for layer_desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
            if blob(gzip.decompress(check(layer_desc))) != diff_id:
                raise SystemExit(path + ": layer diff_id mismatch")
        print(desc["annotations"]["org.opencontainers.image.ref.name"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rootfs", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--ref")
    ap.add_argument("--entrypoint")
    ap.add_argument("--arch", default="amd64")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--label", action="append", default=[])
    ap.add_argument("--verify")
    args = ap.parse_args()
    if args.verify:
        return verify(args.verify)
    if not (args.rootfs and args.out and args.ref and args.entrypoint):
        ap.error("ROOTFS, OUT, --ref and --entrypoint are required")
    build(args)


if __name__ == "__main__":
    sys.exit(main())

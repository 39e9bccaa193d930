#!/usr/bin/env python3
"""Write a one-layer OCI image layout from a root filesystem directory.

    oci_layout.py ROOTFS OUT --config CONFIG.json [--owner PATH=UID:GID ...]

ROOTFS is packed into one gzip'd tar layer; CONFIG.json holds the image's
runtime config (the "config" object of an OCI image configuration:
Entrypoint, Cmd, Env, User, Volumes, ExposedPorts, Labels, StopSignal...).
OUT becomes an OCI image layout (oci-layout, index.json, blobs/sha256/...)
that `flotilla image import OUT --name NAME` reads.

Why our own writer and not a tool: no registry is reachable and no image
builder is installed; the format is three JSON documents and a tarball, which
the standard library covers (json, hashlib, tarfile, gzip).

Every entry is owned by root (uid/gid 0) unless --owner says otherwise for
that exact path (e.g. --owner var/run/postgresql=999:999): the image must not
carry the build machine's ownership. Modification times are clamped to
SOURCE_DATE_EPOCH (default 0) and the gzip header carries no time or name, so
the same inputs give the same digests.
"""

import argparse
import gzip
import hashlib
import json
import os
import stat
import sys
import tarfile
import time

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class HashingWriter:
    """A write-only file object that hashes and counts what passes through
    to an optional inner file (the uncompressed tar's digest is the layer's
    diff_id; the compressed file's digest names the blob)."""

    def __init__(self, inner=None):
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        if self.inner is not None:
            self.inner.write(data)
        return len(data)

    def flush(self):
        if self.inner is not None:
            self.inner.flush()

    def digest(self):
        return "sha256:" + self.sha.hexdigest()


def parse_owners(values):
    owners = {}
    for value in values:
        path, sep, ids = value.partition("=")
        uid, sep2, gid = ids.partition(":")
        if not sep or not sep2 or not uid.isdigit() or not gid.isdigit():
            sys.exit(f"oci_layout: --owner {value!r}: expected PATH=UID:GID")
        owners[path.strip("/")] = (int(uid), int(gid))
    return owners


def write_layer(rootfs, blob_tmp, owners, epoch):
    """Tar ROOTFS (sorted, so the layer is reproducible) into a gzip file.
    Returns (diff_id, blob digest, blob size)."""
    with open(blob_tmp, "wb") as raw:
        compressed = HashingWriter(raw)
        # filename="" and mtime=0: nothing of the build machine in the header.
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
            uncompressed = HashingWriter(gz)
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                seen_inodes = {}
                for rel in walk_sorted(rootfs):
                    full = os.path.join(rootfs, rel)
                    info = tar.gettarinfo(full, arcname=rel)
                    st = os.lstat(full)
                    # Hard links inside the tree stay hard links (tarfile.add does
                    # the same bookkeeping; we drive gettarinfo ourselves).
                    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                        key = (st.st_dev, st.st_ino)
                        if key in seen_inodes:
                            info.type = tarfile.LNKTYPE
                            info.linkname = seen_inodes[key]
                            info.size = 0
                        else:
                            seen_inodes[key] = rel
                    info.uid, info.gid = owners.get(rel, (0, 0))
                    info.uname = info.gname = ""
                    info.mtime = min(int(info.mtime), epoch)
                    if info.isreg():
                        with open(full, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
    return uncompressed.digest(), compressed.digest(), compressed.size


def walk_sorted(root, rel=""):
    """Relative paths under ROOT, each directory before its contents, sorted
    by name (a stable order gives a stable layer digest)."""
    for name in sorted(os.listdir(os.path.join(root, rel))):
        child = f"{rel}/{name}" if rel else name
        yield child
        full = os.path.join(root, child)
        if os.path.isdir(full) and not os.path.islink(full):
            yield from walk_sorted(root, child)


def write_blob(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rootfs")
    ap.add_argument("out")
    ap.add_argument("--config", required=True, help="JSON file with the image's runtime config")
    ap.add_argument("--owner", action="append", default=[], help="PATH=UID:GID for one entry")
    args = ap.parse_args()

    if not os.path.isdir(args.rootfs):
        sys.exit(f"oci_layout: {args.rootfs}: not a directory")
    with open(args.config) as f:
        runtime_config = json.load(f)
    if not isinstance(runtime_config, dict):
        sys.exit(f"oci_layout: {args.config}: expected a JSON object")
    owners = parse_owners(args.owner)
    missing = [p for p in owners if not os.path.lexists(os.path.join(args.rootfs, p))]
    if missing:
        sys.exit(f"oci_layout: --owner names paths not in the rootfs: {', '.join(missing)}")
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))

    blobs = os.path.join(args.out, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    layer_tmp = os.path.join(blobs, ".layer.tmp")
    diff_id, layer_digest, layer_size = write_layer(args.rootfs, layer_tmp, owners, epoch)
    os.replace(layer_tmp, os.path.join(blobs, layer_digest.split(":", 1)[1]))

    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    image_config = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": runtime_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "examples/bookstore/images/build"}],
    }
    config_digest, config_size = write_blob(blobs, canonical(image_config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = write_blob(blobs, canonical(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    }
    with open(os.path.join(args.out, "index.json"), "wb") as f:
        f.write(canonical(index))
    with open(os.path.join(args.out, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    print(json.dumps({"manifest": manifest_digest, "layer_bytes": layer_size}))


if __name__ == "__main__":
    main()

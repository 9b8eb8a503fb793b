#!/usr/bin/env python3
"""Size report: each static binary's size and each image's compressed size, against
the budgets (binary <= 1.5 MB, compressed image <= 1.5 MB, per arch; MB = 10^6 bytes).

The compressed image size is what a pull transfers: the gzip layers plus the config
blob, read from the OCI archive that scripts/build-image.sh writes (its index, then
each platform's manifest).

Usage: size-report.py DIST_DIR OCI_ARCHIVE
Prints one PASS/FAIL line per budget (for the CI counts) and a table; exit 1 if over.
"""
import json
import os
import sys
import tarfile

BUDGET = 1_500_000
ARCHES = [("amd64", "amd64", None), ("arm64", "arm64", None), ("armv7", "arm", "v7")]


def blob(tar, digest):
    algo, hexd = digest.split(":", 1)
    return tar.extractfile(f"blobs/{algo}/{hexd}").read()


def image_sizes(archive):
    """{(arch, variant): (compressed bytes, layer count)} from an OCI archive."""
    out = {}
    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())
        todo = list(index["manifests"])
        while todo:
            desc = todo.pop()
            doc = json.loads(blob(tar, desc["digest"]))
            if "manifests" in doc:  # nested image index (the manifest list)
                todo.extend(doc["manifests"])
                continue
            plat = desc.get("platform") or {}
            size = doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])
            out[(plat.get("architecture"), plat.get("variant"))] = (size, len(doc["layers"]))
    return out


def main():
    dist, archive = sys.argv[1], sys.argv[2]
    images = image_sizes(archive)
    failed = 0
    rows = []
    for name, arch, variant in ARCHES:
        path = os.path.join(dist, f"linux-{name}", "qnetd")
        bsize = os.path.getsize(path) if os.path.exists(path) else None
        isize, layers = images.get((arch, variant), (None, 0))
        for what, size in (("binary", bsize), ("image (compressed)", isize)):
            good = size is not None and size <= BUDGET
            failed += not good
            shown = "missing" if size is None else f"{size:,} bytes"
            print(f"{'PASS' if good else 'FAIL'}: size {name} {what} {shown} <= {BUDGET:,}")
        rows.append((name, bsize, isize, layers))
    print("size report (budget 1,500,000 bytes each):")
    print(f"  {'arch':6} {'binary':>12} {'image (gzip)':>14} layers")
    for name, b, i, n in rows:
        print(f"  {name:6} {b if b is not None else '-':>12,} {i if i is not None else '-':>14,} {n}")
    print(f"  OCI archive (all three): {os.path.getsize(archive):,} bytes")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

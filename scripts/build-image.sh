#!/usr/bin/env bash
# Build the FROM-scratch images from the static binaries of scripts/build-static.sh:
#
#   localhost/qnetd:dev-amd64, localhost/qnetd:dev-arm64, localhost/qnetd:dev-armv7
#   localhost/qnetd:dev                 manifest list of the three
#   <out>/qnetd-dev.oci.tar             OCI archive: image index with all three platforms
#
# COPY only (Containerfile), so nothing is emulated and the runtime is never started.
# Installs podman and runc if missing (scripts/apt-need.sh). podman on this VM needs
# container/containers.conf (no default rlimits, runc, cgroupfs: see the comments in
# it); this script exports CONTAINERS_CONF unless it is already set.
#
# Env: QNETD_DIST   binaries (default <repo>/target/dist, from build-static.sh)
#      QNETD_IMAGE  image name (default localhost/qnetd), QNETD_TAG (default dev)
#      QNETD_OUT    output dir for archives (default <repo>/target/image)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
dist=${QNETD_DIST:-$repo/target/dist}
image=${QNETD_IMAGE:-localhost/qnetd}
tag=${QNETD_TAG:-dev}
out=${QNETD_OUT:-$repo/target/image}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/container/containers.conf}
# arch suffix -> podman platform
declare -A platform=([amd64]=linux/amd64 [arm64]=linux/arm64 [armv7]=linux/arm/v7)
arches=(amd64 arm64 armv7)
# The multi-call names; each is a symlink to `qnetd` in /usr/local/bin.
links=(corosync-qnetd corosync-qnetd-tool corosync-qnetd-certutil)

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The build context: only what the image contains, so the context upload is tiny
# and nothing else of the tree can leak into the image. git keeps no empty
# directories and no ownership, so the skeleton is made here rather than committed.
stage() {
    local ctx=$1 a
    rm -rf "$ctx"
    mkdir -p "$ctx/skel/etc" "$ctx/skel/run" "$ctx/skel/var" "$ctx/skel/tmp"
    chmod 0755 "$ctx/skel/etc" "$ctx/skel/run" "$ctx/skel/var"
    chmod 1777 "$ctx/skel/tmp"
    ln -s /run "$ctx/skel/var/run"
    mkdir -p "$ctx/state/etc-corosync/qnetd" "$ctx/state/run-corosync-qnetd"
    chmod 0750 "$ctx/state/etc-corosync"
    chmod 0770 "$ctx/state/etc-corosync/qnetd" "$ctx/state/run-corosync-qnetd"
    for a in "${arches[@]}"; do
        [ -f "$dist/linux-$a/qnetd" ] || die "missing $dist/linux-$a/qnetd (run scripts/build-static.sh)"
        mkdir -p "$ctx/dist/linux-$a"
        install -m 0555 "$dist/linux-$a/qnetd" "$ctx/dist/linux-$a/qnetd"
        for l in "${links[@]}"; do ln -s qnetd "$ctx/dist/linux-$a/$l"; done
    done
}

[ -n "${QNETD_SKIP_SETUP:-}" ] || scripts/apt-need.sh podman runc

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
rev=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
ctx=$repo/target/image-context
stage "$ctx"
mkdir -p "$out"

# A stale list of the same name would make `manifest create` fail.
podman manifest exists "$image:$tag" 2>/dev/null && podman manifest rm "$image:$tag" >/dev/null
for a in "${arches[@]}"; do
    log "podman build $image:$tag-$a (${platform[$a]})"
    old_id=$(podman image inspect -f '{{.Id}}' "$image:$tag-$a" 2>/dev/null || true)
    # --format docker: keeps HEALTHCHECK (dropped from OCI-format configs).
    # --timestamp 0: reproducible image ID. --squash: one layer instead of four.
    podman build -q --format docker --timestamp 0 --squash --platform "${platform[$a]}" \
        --build-arg "QNETD_VERSION=$version" --build-arg "QNETD_GIT_REV=$rev" \
        -t "$image:$tag-$a" -f Containerfile "$ctx" >/dev/null
    # The tag moved to the new image: drop the one it left behind (only that one,
    # and only if nothing else uses it), so rebuilds do not pile up <none> images.
    new_id=$(podman image inspect -f '{{.Id}}' "$image:$tag-$a")
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then podman rmi "$old_id" >/dev/null 2>&1 || true; fi
done

podman manifest create "$image:$tag" >/dev/null
for a in "${arches[@]}"; do
    podman manifest add "$image:$tag" "containers-storage:$image:$tag-$a" >/dev/null
done
archive=$out/qnetd-$tag.oci.tar
rm -f "$archive"
podman manifest push -q --all --format oci "$image:$tag" "oci-archive:$archive:qnetd:$tag"
log "wrote $archive ($(stat -c %s "$archive") bytes) and $image:$tag-{${arches[*]}}, manifest list $image:$tag"

#!/usr/bin/env bash
# End to end, for CI: install the toolchain and podman stack (idempotent), build the
# three static binaries, build the images + manifest list + OCI archive, run
# the daemon integration tests against the static amd64 binary, run
# scripts/container-test.sh (qemu checks, real container runs), print the size report.
#
# Ends with `ci-static-and-image: N passed, N failed, N skipped` (the sum of every
# check here and in container-test.sh) and exits non-zero if anything failed.
# Prints the wall time of each phase. Must run as root (apt, binfmt, podman).
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
export QNETD_DIST=${QNETD_DIST:-$repo/target/dist}
export QNETD_OUT=${QNETD_OUT:-$repo/target/image}
export QNETD_TAG=${QNETD_TAG:-dev}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/container/containers.conf}
# The image test's vote step: enrol a cluster with the container's own certutil and
# let two qdevice-like TLS clients get their ACK (set it empty to skip).
export QNETD_VOTE_CLIENT_CMD=${QNETD_VOTE_CLIENT_CMD-$repo/scripts/container-vote.sh}

pass=0 fail=0 skip=0
declare -a timings=()
t_all=$SECONDS
log=$(mktemp /tmp/qnetd-ci.XXXXXX)
trap 'rm -f "$log"' EXIT

# step NAME COMMAND...: run, show its output, count it and time it.
step() {
    local name=$1 t=$SECONDS rc; shift
    echo "=== $name"
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    timings+=("$(printf '%-34s %4d s' "$name" $((SECONDS - t)))")
    if [ "$rc" = 0 ]; then pass=$((pass + 1)); echo "PASS: $name"; else fail=$((fail + 1)); echo "FAIL: $name (exit $rc)"; fi
    return "$rc"
}
# Add the counts of a sub-script's closing "N passed, N failed[, N skipped]" line.
add_counts() {
    local line
    line=$(grep -E '^[A-Za-z-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then fail=$((fail + 1)); echo "FAIL: no counts from $1"; return; fi
    read -r p f s < <(sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*/\1 \2 \4/' <<<"$line")
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + ${s:-0}))
}

step "setup: toolchain (zig, cargo-zigbuild, rustup, qemu)" scripts/build-static.sh --setup-only
step "setup: binfmt for qemu-user" scripts/binfmt.sh
built=1
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf; do
    QNETD_SKIP_SETUP=1 step "build static $t" scripts/build-static.sh "$t" || built=
done
# The shipped binary (musl, static) must pass the daemon tests the glibc debug
# build passes: TLS, lifecycle, syslog, the C command line, the real NSS tools.
if [ -x "$QNETD_DIST/linux-amd64/qnetd" ]; then
    QNETD_TEST_BIN=$QNETD_DIST/linux-amd64/qnetd step "daemon tests against the static amd64 binary" \
        cargo test --locked --test daemon_tls --test daemon_lifecycle --test daemon_syslog \
        --test daemon_cli --test certs_real_tools
fi
if [ -n "$built" ] && step "build images + manifest + OCI archive" scripts/build-image.sh; then
    # container-test counts its own checks; its exit code is already in them.
    t=$SECONDS
    echo "=== container-test"
    # The binaries were built from this tree just now: their stamp must be its HEAD.
    QNETD_EXPECT_REV=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown) \
        scripts/container-test.sh 2>&1 | tee "$log"
    timings+=("$(printf '%-34s %4d s' "container-test" $((SECONDS - t)))")
    add_counts container-test.sh
    echo "=== size report"
    python3 scripts/size-report.py "$QNETD_DIST" "$QNETD_OUT/qnetd-$QNETD_TAG.oci.tar" 2>&1 | tee "$log"
    p=$(grep -c '^PASS' "$log"); f=$(grep -c '^FAIL' "$log")
    pass=$((pass + p)); fail=$((fail + f))
else
    fail=$((fail + 1)); echo "FAIL: images and container tests not run (build failed)"
fi

echo "=== wall time"
printf '  %s\n' "${timings[@]}"
printf '  %-34s %4d s\n' total $((SECONDS - t_all))
echo "ci-static-and-image: $pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]

#!/usr/bin/env bash
# Runs every test of the project: unit and integration tests (cargo), the
# randomized safety check, a short fuzz run, and the end-to-end suite with real
# corosync + corosync-qdevice against our daemon. Installs what it needs first
# (Debian packages, cargo tools), so it works on a fresh machine of this kind.
#
#   scripts/test.sh            everything
#   SKIP_E2E=1 scripts/test.sh without the end-to-end suite (needs root + namespaces)
#   SKIP_FUZZ=1 scripts/test.sh without the fuzz run
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for p in corosync corosync-qdevice corosync-qnetd libnss3-tools iproute2 nftables; do
    dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "== installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

echo "== cargo test"
# The randomized safety check runs on its own below, uncaptured, so that its
# "N histories" lines are printed.
cargo test --locked -- --skip never_acks_two_disjoint

echo "== randomized safety check (tests/safety.rs)"
cargo test --locked --test safety -- --nocapture never_acks_two_disjoint

if [ "${SKIP_FUZZ:-0}" != 1 ] && [ -x scripts/fuzz-smoke.sh ]; then
    echo "== fuzz smoke"
    scripts/fuzz-smoke.sh
fi

if [ "${SKIP_E2E:-0}" != 1 ] && [ -f tests/e2e/run.py ]; then
    echo "== end-to-end (real corosync + corosync-qdevice against our qnetd)"
    cargo build --release --locked
    QNETD_IMPL=rust QNETD_BIN="$PWD/target/release/qnetd" python3 tests/e2e/run.py
fi

#!/usr/bin/env bash
# Side-by-side benchmark: our qnetd against Debian's C corosync-qnetd, one after
# the other on loopback, with the identical load from target/release/qnetd-bench
# (N clusters x M nodes of qdevice clients over real TLS with real client
# certificates, each signed by the server's own certutil). Prints one table.
#
# Usage: scripts/bench.sh [--quick] [options]
#   default   2500 clusters x 4 nodes = 10,000 clients (RSS also at 1,000); < 10 min
#   --quick   250 clusters x 4 nodes = 1,000 clients (RSS also at 100); < 2 min, for CI
#   --clusters N, --nodes M, --small K   other sizes (K = clients of the first step)
#   --connect-window W   clients between TCP connect and INIT_REPLY at once (10:
#             the default listen backlog of both servers is 10; more in flight
#             and the kernel drops SYNs, and the storm measures its retry timer)
#   --phase-limit S   seconds a connect phase may take (150; --quick 60). The C
#             qnetd needs far longer for 10,000 TLS clients; what it reached
#             by then is reported as a lower bound, and later phases run with
#             the clients that got in (the table says "at N").
#   --keep    keep the work directory (keys, stores, server logs)
# Env: QNETD_BIN=path  measure this qnetd binary (default: the static x86_64 build
#                      of scripts/build-static.sh if its toolchain is installed,
#                      else the host build target/release/qnetd)
#
# Needs root: the C corosync-qnetd-certutil has the fixed store path
# /etc/corosync/qnetd/nssdb, so it runs in a private mount namespace
# (unshare -m) with a temporary directory bound over /etc/corosync; the host's
# /etc/corosync is never touched. Both servers get their own lock file, IPC
# socket and store through -S, and listen on 127.0.0.1 only.
#
# Raw results (key=value) and the table land in target/bench/.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

clusters=2500 nodes=4 small=1000 hb_fast=8000 hb_window=16 lat_clusters=1000 phase_limit=150 event_rate=200 window=10 mode=full keep= failed=
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) mode=quick; clusters=250; small=100; hb_fast=1000; hb_window=4; lat_clusters=250; phase_limit=60 ;;
        --clusters) clusters=$2; shift ;;
        --nodes) nodes=$2; shift ;;
        --small) small=$2; shift ;;
        --connect-window) window=$2; shift ;;
        --phase-limit) phase_limit=$2; shift ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
clients=$((clusters * nodes))
[ "$lat_clusters" -le "$clusters" ] || lat_clusters=$clusters

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (private mount namespace for the C certutil)"

# File descriptors: one per client in the generator, one per accepted client in
# the server, plus a few dozen each. The hard limit cannot be raised here
# (CAP_SYS_RESOURCE is missing), so raise the soft one to it and check.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
ulimit -Sn "$hard"
[ $((clients + 200)) -le "$hard" ] || die "$clients clients need more than the hard fd limit $hard"

# The C reference and the NSS tools (CI installs them already).
need=()
command -v corosync-qnetd >/dev/null || need+=(corosync-qnetd)
command -v certutil >/dev/null || need+=(libnss3-tools)
if [ ${#need[@]} -gt 0 ]; then
    log "apt-get install ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

out=$repo/target/bench
mkdir -p "$out"
log "building (release)"
nice -n 10 cargo build -q --release --bin qnetd --bin qnetd-bench
bench=$repo/target/release/qnetd-bench
# What we measure is what ships: the static musl binary of scripts/build-static.sh
# (same flags as the release), when its zig toolchain is installed (the script's
# --setup-only installs it); else the host (glibc) build, which maps libc.so and
# so starts with ~1.7 MB more RSS (file-backed pages shared with other programs).
if [ -n "${QNETD_BIN:-}" ]; then
    ours_bin=$QNETD_BIN
elif [ -x scripts/build-static.sh ] && command -v cargo-zigbuild >/dev/null \
    && python3 -m ziglang version >/dev/null 2>&1 \
    && QNETD_SKIP_SETUP=1 scripts/build-static.sh x86_64-unknown-linux-musl >"$out/build-static.log" 2>&1; then
    log "measuring the static x86_64 musl binary (scripts/build-static.sh)"
    ours_bin=$repo/target/dist/linux-amd64/qnetd
else
    log "no static build (zig toolchain missing or build failed, see $out/build-static.log): measuring the host build"
    ours_bin=$repo/target/release/qnetd
fi
ours_bin=$(readlink -f "$ours_bin")
[ -x "$ours_bin" ] || die "no qnetd binary at $ours_bin"

work=$(mktemp -d /tmp/qnetd-bench.XXXXXX)
cleanup() { [ -n "$keep" ] || rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/bin" "$work/ours/run" "$work/c/etc" "$work/c/run"
# The multi-call binary takes the C programs' names (and their flags).
ln -s "$ours_bin" "$work/bin/corosync-qnetd"
ln -s "$ours_bin" "$work/bin/corosync-qnetd-certutil"

t=$SECONDS
log "keys and requests for $clusters clusters"
"$bench" keys --dir "$work/keys" --clusters "$clusters"

log "our store: corosync-qnetd-certutil -i, then -s per cluster (ours)"
export QNETD_NSSDB_DIR=$work/ours/nssdb
"$work/bin/corosync-qnetd-certutil" -i >/dev/null
for ((i = 0; i < clusters; i++)); do
    "$work/bin/corosync-qnetd-certutil" -s -c "$work/keys/bench$i.crq" -n "bench$i" >/dev/null
done
unset QNETD_NSSDB_DIR

log "C store: corosync-qnetd-certutil -i, then -s per cluster (C, private mount namespace)"
unshare -m bash -euc '
    mount --make-rprivate /
    mkdir -p /etc/corosync
    mount --bind "$1" /etc/corosync
    corosync-qnetd-certutil -i >/dev/null 2>&1
    for ((i = 0; i < $2; i++)); do
        corosync-qnetd-certutil -s -c "$3/bench$i.crq" -n "bench$i" >/dev/null
    done
' _ "$work/c/etc" "$clusters" "$work/keys"
cdb=$work/c/etc/qnetd/nssdb
[ -f "$cdb/cluster-bench$((clusters - 1)).crt" ] || die "C certutil did not sign the requests"
log "certificates ready in $((SECONDS - t)) s"

common=(--clusters "$clusters" --nodes "$nodes" --small "$small" --hb-fast-ms "$hb_fast" --hb-window-s "$hb_window"
        --latency-clusters "$lat_clusters" --event-rate "$event_rate" --connect-window "$window" --phase-timeout-s "$phase_limit" --keys "$work/keys")

load=$(cut -d' ' -f1-3 /proc/loadavg)
port=$("$bench" free-port)
log "ours on 127.0.0.1:$port"
"$bench" run --label ours --addr "127.0.0.1:$port" "${common[@]}" \
    --ca "$work/ours/nssdb/qnetd-cacert.crt" --certs "$work/ours/nssdb" \
    --server-log "$work/ours/server.log" --out "$out/ours-$mode.txt" \
    --server-cmd "exec $work/bin/corosync-qnetd -f -l 127.0.0.1 -p $port -S nss_db_dir=$work/ours/nssdb,lock_file=$work/ours/run/qnetd.pid,local_socket_file=$work/ours/run/qnetd.sock" \
    || { keep=1 failed=1; log "our run failed"; }

port=$("$bench" free-port)
log "C corosync-qnetd on 127.0.0.1:$port"
"$bench" run --label C --addr "127.0.0.1:$port" "${common[@]}" \
    --ca "$cdb/qnetd-cacert.crt" --certs "$cdb" \
    --server-log "$work/c/server.log" --out "$out/c-$mode.txt" \
    --server-cmd "exec corosync-qnetd -f -l 127.0.0.1 -p $port -S nss_db_dir=$cdb,lock_file=$work/c/run/qnetd.pid,local_socket_file=$work/c/run/qnetd.sock" \
    || { keep=1 failed=1; log "C run failed"; }

# Robustness probe (1 s each): a node leaves while the only other connected node
# of its cluster has done INIT but sent no node list yet. The C qnetd 3.0.3
# segfaults there (ffsplit's lowest tie-breaker reads the empty config list).
probe() {
    local label=$1 db=$2 bin=$3 dir=$4 port
    port=$("$bench" free-port)
    "$bench" probe --addr "127.0.0.1:$port" --ca "$db/qnetd-cacert.crt" --certs "$db" --keys "$work/keys" \
        --server-log "$dir/probe.log" \
        --server-cmd "exec $bin -f -l 127.0.0.1 -p $port -S nss_db_dir=$db,lock_file=$dir/run/probe.pid,local_socket_file=$dir/run/probe.sock" \
        2>/dev/null | sed "s/^/$label: /"
}
probe_ours=$(probe ours "$work/ours/nssdb" "$work/bin/corosync-qnetd" "$work/ours" || true)
probe_c=$(probe C "$cdb" corosync-qnetd "$work/c" || true)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "Measured on: $cpu, $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, kernel $(uname -r), load average before the runs $load"
    echo "ours: $("$ours_bin" --version 2>/dev/null | head -n1), $(file -b "$ours_bin" | cut -d, -f1-2,4 | sed 's/ELF 64-bit LSB //'), built by $(rustc --version | cut -d' ' -f1-2)"
    echo "C: corosync-qnetd $(dpkg-query -W -f='${Version}' corosync-qnetd), NSS $(dpkg-query -W -f='${Version}' libnss3)"
    echo "Load: $clusters clusters x $nodes nodes = $clients clients (ffsplit, TLS 1.3 with client certificates: ECDSA P-256 client keys), all on 127.0.0.1"
    echo
    "$bench" report "$out/ours-$mode.txt" "$out/c-$mode.txt"
    echo
    echo "Node leaves while its cluster partner's node lists are pending (qnetd-bench probe):"
    echo "- ${probe_ours:-ours: probe did not run}"
    echo "- ${probe_c:-C: probe did not run}"
} | tee "$out/table-$mode.md"
[ -z "$keep" ] || log "work dir kept: $work"
[ -z "$failed" ] || die "a run failed (see above and the server logs in $work)"

#!/usr/bin/env bash
# Tests the static binaries and the images made by scripts/build-static.sh and
# scripts/build-image.sh. Builds nothing. CI calls it (scripts/ci-static-and-image.sh).
#
# 1. Each binary (arm ones under qemu-user): `qnetd --version` names the version and
#    the target; started as a daemon with TLS on a loopback port and an empty data
#    dir, it creates its CA, answers the host amd64 `corosync-qnetd-tool -s` over IPC,
#    completes a real STARTTLS + TLS handshake (scripts/qnetd-tls-probe.py) with a
#    server certificate that verifies against that CA, and exits 0 on SIGTERM.
# 2. The amd64 image runs for real: --cap-drop=ALL --read-only --user 5403, an empty
#    named volume on /etc/corosync, port published on 127.0.0.1. It must create the
#    CA in the volume, pass the TLS probe, answer `podman exec ... corosync-qnetd-tool
#    -s` and the image HEALTHCHECK, serve a vote client (step marked below), keep its
#    CA across a restart, and exit 0 on `podman stop`. Its processes never run as
#    uid 0 (read from /proc/<pid>/task/*/status on the host, several times).
# 3. The arm64 and armv7 images run under qemu-user (binfmt): --version, then the
#    daemon as in 2 but with the image's own USER (IPC status, uid, exit 0 on stop).
#
# Prints one PASS/FAIL/SKIP line per check and ends with
#   container-test: N passed, N failed, N skipped
# Exit status: 0 if nothing failed.
#
# Env: QNETD_DIST, QNETD_IMAGE, QNETD_TAG as in build-image.sh;
#      QNETD_EXPECT_REV        if set, `qnetd --version` must also print this revision;
#      QNETD_VOTE_CLIENT_CMD   see the vote client step below.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dist=${QNETD_DIST:-$repo/target/dist}
image=${QNETD_IMAGE:-localhost/qnetd}
tag=${QNETD_TAG:-dev}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/container/containers.conf}
uid=5403                                   # USER in Containerfile
ca_name=qnetd-cacert.crt                   # CA export in the NSS dir (tool-and-files.md §6)
probe=$repo/scripts/qnetd-tls-probe.py
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
declare -A triple=([amd64]=x86_64-unknown-linux-musl [arm64]=aarch64-unknown-linux-musl [armv7]=armv7-unknown-linux-musleabihf)
declare -A qemu=([amd64]="" [arm64]=qemu-aarch64-static [armv7]=qemu-arm-static)
# Seconds to wait for a daemon to answer; qemu-user is slow, key generation more so.
declare -A ready_timeout=([amd64]=30 [arm64]=120 [armv7]=120)

pass=0 fail=0 skip=0
tmp=$(mktemp -d /tmp/qnetd-ctest.XXXXXX)
containers=() volumes=() pids=()
cleanup() {
    local c v p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    for c in "${containers[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1; done
    for v in "${volumes[@]}"; do podman volume rm -f "$v" >/dev/null 2>&1; done
    rm -rf "$tmp"
}
trap cleanup EXIT

ok()   { pass=$((pass + 1)); echo "PASS: $1"; }
bad()  { fail=$((fail + 1)); echo "FAIL: $1"; [ -s "$tmp/out" ] && sed 's/^/      | /' "$tmp/out" | tail -n 15; }
skipped() { skip=$((skip + 1)); echo "SKIP: $1"; }
# check DESCRIPTION COMMAND...: run it, output to $tmp/out, count the result.
check() {
    local d=$1; shift
    if "$@" >"$tmp/out" 2>&1; then ok "$d"; else bad "$d"; fi
}
# retry SECONDS ALIVE COMMAND...: until COMMAND succeeds; gives up at once when
# `ALIVE` (a pid, or a container name) has died. Output of the last try in $tmp/out.
retry() {
    local end=$((SECONDS + $1)) alive=$2; shift 2
    until "$@" >"$tmp/out" 2>&1; do
        if [[ $alive =~ ^[0-9]+$ ]]; then
            kill -0 "$alive" 2>/dev/null || { echo "process $alive exited" >>"$tmp/out"; return 1; }
        elif [ "$(podman inspect -f '{{.State.Running}}' "$alive" 2>/dev/null)" != true ]; then
            echo "container $alive is not running" >>"$tmp/out"; return 1
        fi
        [ $SECONDS -lt "$end" ] || return 1
        sleep 0.5
    done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The text must contain every further argument.
contains_all() { local text=$1 w; shift; for w in "$@"; do grep -qF -- "$w" <<<"$text" || { echo "missing '$w' in: $text"; return 1; }; done; }
# version_ok EXIT_CODE OUTPUT WORD...: the command exited 0 and printed every word.
version_ok() { local rc=$1 out=$2; shift 2; echo "exit $rc: $out"; [ "$rc" = 0 ] && contains_all "$out" "$@"; }

# never_root PID...: every thread of each process (and its children) runs with
# real/effective/saved/fs uid = $uid and no effective capabilities.
never_root() {
    local p t u cap pidlist=("$@") kids
    for p in "$@"; do
        kids=$(cat /proc/"$p"/task/*/children 2>/dev/null)
        # shellcheck disable=SC2206
        pidlist+=($kids)
    done
    for p in "${pidlist[@]}"; do
        for t in /proc/"$p"/task/*/status; do
            [ -r "$t" ] || continue
            u=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "$t")
            cap=$(awk '/^CapEff:/ {print $2}' "$t")
            [ "$u" = "$uid $uid $uid $uid" ] || { echo "$t: Uid $u"; return 1; }
            [ "$cap" = 0000000000000000 ] || { echo "$t: CapEff $cap"; return 1; }
        done
    done
    echo "uids: $uid; CapEff 0 (pids ${pidlist[*]})"
}
# term_and_wait PID: SIGTERM, then the exit status; SIGKILL and 124 if it is still
# running after 15 s (a daemon that ignores SIGTERM must not hang the test).
term_and_wait() {
    local pid=$1 end=$((SECONDS + 15))
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do
        if [ $SECONDS -ge "$end" ]; then kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; return 124; fi
        sleep 0.2
    done
    wait "$pid"
}
container_pid() { podman inspect -f '{{.State.Pid}}' "$1"; }
uid_check() { local p; p=$(container_pid "$1") && [ "$p" -gt 0 ] && never_root "$p"; }

# ---------------------------------------------------------------- 1. binaries
host_tool=$tmp/hostbin/corosync-qnetd-tool
mkdir -p "$tmp/hostbin"
ln -s "$dist/linux-amd64/qnetd" "$host_tool"

test_binary() {
    local a=$1 bin=$dist/linux-$1/qnetd d=$tmp/bin-$1 port pid rc out
    local -a run=()
    [ -n "${qemu[$a]}" ] && run=("${qemu[$a]}")
    if [ ! -x "$bin" ]; then bad "$a: binary $bin missing"; return; fi
    out=$("${run[@]}" "$bin" --version 2>&1) && rc=0 || rc=$?
    check "$a binary: qnetd --version exits 0 and names version $version${QNETD_EXPECT_REV:+, revision $QNETD_EXPECT_REV} and ${triple[$a]}" \
        version_ok "$rc" "$out" "$version" "${triple[$a]}" ${QNETD_EXPECT_REV:+"$QNETD_EXPECT_REV"}

    # Daemon: -c off so the probe needs no client certificate; an empty data dir.
    mkdir -p "$d"
    ln -s "$bin" "$d/corosync-qnetd"
    port=$(free_port)
    "${run[@]}" "$d/corosync-qnetd" -f -s on -c off -l 127.0.0.1 -p "$port" \
        -S "nss_db_dir=$d/nssdb,lock_file=$d/run/qnetd.pid,local_socket_file=$d/run/qnetd.sock" \
        >"$d/log" 2>&1 &
    pid=$!
    pids+=("$pid")
    if retry "${ready_timeout[$a]}" "$pid" "$host_tool" -s -p "$d/run/qnetd.sock"; then
        ok "$a binary: daemon answers the host amd64 corosync-qnetd-tool -s"
    else
        bad "$a binary: daemon answers the host amd64 corosync-qnetd-tool -s"
        sed 's/^/      log | /' "$d/log" | tail -n 10
    fi
    check "$a binary: daemon created its CA ($ca_name)" test -s "$d/nssdb/$ca_name"
    check "$a binary: STARTTLS + TLS handshake, server cert verifies against the CA" \
        python3 "$probe" 127.0.0.1 "$port" "$d/nssdb/$ca_name"
    rc=0; term_and_wait "$pid" || rc=$?
    check "$a binary: exits 0 on SIGTERM" bash -c 'echo "exit status $1"; [ "$1" = 0 ]' _ "$rc"
}

for a in amd64 arm64 armv7; do test_binary "$a"; done

# ---------------------------------------------------------------- 2./3. images
if ! "$repo/scripts/binfmt.sh" >"$tmp/out" 2>&1; then bad "binfmt registration for qemu-user"; fi

check "manifest list $image:$tag has linux/amd64, linux/arm64, linux/arm/v7" bash -c '
    m=$(podman manifest inspect "$1") || exit 1
    python3 -c "
import json, sys
m = json.loads(sys.argv[1])
got = sorted(\"/\".join(filter(None, [p[\"platform\"][\"os\"], p[\"platform\"][\"architecture\"], p[\"platform\"].get(\"variant\", \"\")])) for p in m[\"manifests\"])
print(got)
sys.exit(got != [\"linux/amd64\", \"linux/arm/v7\", \"linux/arm64\"])
" "$m"' _ "$image:$tag"

# The amd64 runs pass --user explicitly (as an operator would); the arm runs rely on
# the image's own USER, so a root default in the image would show up there.
run_opts=(--cap-drop=ALL --read-only --security-opt no-new-privileges)
declare -A user_opt=([amd64]="--user=$uid:$uid" [arm64]="" [armv7]="")

# run_daemon NAME ARCH VOLUME PORT: start the image's default command (the daemon).
run_daemon() {
    local name=$1 a=$2 vol=$3 port=$4
    local -a opts=("${run_opts[@]}")
    [ -n "${user_opt[$a]}" ] && opts+=("${user_opt[$a]}")
    [ -n "$port" ] && opts+=(-p "127.0.0.1:$port:5403")
    podman rm -f -t 0 "$name" >/dev/null 2>&1
    containers+=("$name")
    podman run -d --name "$name" "${opts[@]}" -v "$vol:/etc/corosync" "$image:$tag-$a"
}
# stop_check NAME DESC: podman stop, then the daemon's exit code must be 0.
stop_check() {
    local name=$1 d=$2
    check "$d" bash -c 'podman stop -t 15 "$1" >/dev/null && c=$(podman inspect -f "{{.State.ExitCode}}" "$1") && echo "exit code $c" && [ "$c" = 0 ]' _ "$name"
}
tool_status() { podman exec "$1" corosync-qnetd-tool -s; }

test_amd64_image() {
    local name=qnetd-ctest-amd64-$$ vol=qnetd-ctest-vol-$$ port mp ca sum
    port=$(free_port)
    podman volume create "$vol" >/dev/null && volumes+=("$vol")
    mp=$(podman volume inspect -f '{{.Mountpoint}}' "$vol")
    ca=$mp/qnetd/nssdb/$ca_name
    check "amd64 image: daemon starts (--cap-drop=ALL --read-only --user $uid, empty volume)" \
        run_daemon "$name" amd64 "$vol" "$port"
    if retry "${ready_timeout[amd64]}" "$name" tool_status "$name"; then
        ok "amd64 image: podman exec corosync-qnetd-tool -s answers"
    else
        bad "amd64 image: podman exec corosync-qnetd-tool -s answers"
        podman logs "$name" 2>&1 | tail -n 10 | sed 's/^/      log | /'
    fi
    check "amd64 image: status names the published port 5403" contains_all "$(tool_status "$name" 2>&1)" "QNetd address:" "5403"
    check "amd64 image: container process never runs as uid 0 (after start)" uid_check "$name"
    check "amd64 image: CA created in the fresh volume, owned by $uid" \
        bash -c 'test -s "$1" && [ "$(stat -c %u "$1")" = "$2" ] && ls -ln "$(dirname "$1")"' _ "$ca" "$uid"
    check "amd64 image: STARTTLS + TLS handshake on the published port, cert verifies against the volume's CA" \
        python3 "$probe" 127.0.0.1 "$port" "$ca"
    check "amd64 image: HEALTHCHECK (qnetd health) reports healthy" podman healthcheck run "$name"

    # >>> VOTE CLIENT STEP (ci-static-and-image.sh sets scripts/container-vote.sh) <<<
    # A real client must register with the daemon in the container and get a vote.
    # Set QNETD_VOTE_CLIENT_CMD to a command (run with bash -c) that does so and exits
    # 0 only if the vote arrived. It gets QNETD_HOST, QNETD_PORT, QNETD_CA (the CA file
    # in the volume), QNETD_CONTAINER (for `podman exec ... corosync-qnetd-certutil`),
    # QNETD_VOLUME_DIR and QNETD_CLIENT_BIN (the host amd64 qnetd binary).
    if [ -n "${QNETD_VOTE_CLIENT_CMD:-}" ]; then
        check "amd64 image: a client registers and gets a vote" \
            env QNETD_HOST=127.0.0.1 QNETD_PORT="$port" QNETD_CA="$ca" QNETD_CONTAINER="$name" \
            QNETD_VOLUME_DIR="$mp" QNETD_CLIENT_BIN="$dist/linux-amd64/qnetd" bash -c "$QNETD_VOTE_CLIENT_CMD"
    else
        skipped "amd64 image: a client registers and gets a vote (QNETD_VOTE_CLIENT_CMD not set yet)"
    fi
    # <<< VOTE CLIENT STEP >>>

    check "amd64 image: container process never runs as uid 0 (after the clients)" uid_check "$name"
    stop_check "$name" "amd64 image: exits 0 on podman stop"

    # Same volume again: the CA must be kept, not made anew.
    sum=$(sha256sum "$ca" 2>/dev/null)
    run_daemon "$name" amd64 "$vol" "" >/dev/null 2>&1
    if retry "${ready_timeout[amd64]}" "$name" tool_status "$name"; then
        check "amd64 image: restart on the same volume keeps the CA" bash -c '[ -n "$1" ] && [ "$(sha256sum "$2")" = "$1" ]' _ "$sum" "$ca"
    else
        bad "amd64 image: restart on the same volume answers corosync-qnetd-tool -s"
    fi
    stop_check "$name" "amd64 image: restarted daemon exits 0 on podman stop"
}

test_arm_image() {
    local a=$1 name=qnetd-ctest-$1-$$ vol=qnetd-ctest-vol-$1-$$ out rc
    out=$(podman run --rm "${run_opts[@]}" "$image:$tag-$a" qnetd --version 2>&1) && rc=0 || rc=$?
    check "$a image (qemu): qnetd --version exits 0 and names ${triple[$a]}" \
        version_ok "$rc" "$out" "$version" "${triple[$a]}"
    podman volume create "$vol" >/dev/null && volumes+=("$vol")
    check "$a image (qemu): daemon starts (--cap-drop=ALL --read-only, the image's own USER)" run_daemon "$name" "$a" "$vol" ""
    if retry "${ready_timeout[$a]}" "$name" tool_status "$name"; then
        ok "$a image (qemu): podman exec corosync-qnetd-tool -s answers"
    else
        bad "$a image (qemu): podman exec corosync-qnetd-tool -s answers"
        podman logs "$name" 2>&1 | tail -n 10 | sed 's/^/      log | /'
    fi
    check "$a image (qemu): container process never runs as uid 0" uid_check "$name"
    stop_check "$name" "$a image (qemu): exits 0 on podman stop"
}

test_amd64_image
for a in arm64 armv7; do test_arm_image "$a"; done

echo "container-test: $pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]

#!/usr/bin/env bash
# Build fully static, stripped `qnetd` binaries for the three release targets:
#
#   x86_64-unknown-linux-musl        -> target/dist/linux-amd64/qnetd
#   aarch64-unknown-linux-musl       -> target/dist/linux-arm64/qnetd
#   armv7-unknown-linux-musleabihf   -> target/dist/linux-armv7/qnetd
#
# Toolchain (why: /work/shared/toolchain.md §1): cargo-zigbuild with zig from PyPI
# links all three against zig's own musl, so no Debian cross gcc and no dpkg
# multiarch is needed (multiarch made `apt-get update` fail on a stale armhf index).
# std is compiled from rust-src for all three (-Zbuild-std, allowed on stable through
# RUSTC_BOOTSTRAP=1): rustup serves no musl std for armv7 musleabihf here, and for
# x86_64/aarch64 a size-optimised std without the backtrace symbolizer is smaller
# (see build_one). armv7 also needs -Clink-self-contained=no (.cargo/config.toml).
#
# It installs what it needs on a fresh Debian 12 machine, idempotently (each step
# first checks whether it is already done). Set QNETD_SKIP_SETUP=1 to skip that.
#
# Usage: scripts/build-static.sh [TARGET...]      (default: all three)
#        scripts/build-static.sh --setup-only     (install the toolchain, build nothing)
# Env:   QNETD_PROFILE   cargo profile (default release)
#        QNETD_DIST      output dir (default <repo>/target/dist)
#        QNETD_CARGO_ARGS extra cargo args (e.g. "--config profile.release.opt-level='s'")
#        QNETD_PREBUILT_STD=1  use rustup's std for x86_64/aarch64 instead of -Zbuild-std
set -euo pipefail

ZIG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.1
ALL_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
profile=${QNETD_PROFILE:-release}
dist=${QNETD_DIST:-$repo/target/dist}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")

log() { printf '[build-static] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

setup() {
    local t
    # qemu-user-static: runs the arm binaries here; binutils: readelf for the static check.
    # (pip comes with the machine's python3.)
    "$repo/scripts/apt-need.sh" qemu-user-static binutils

    if [ "$(python3 -m ziglang version 2>/dev/null)" != "$ZIG_VERSION" ]; then
        log "pip install ziglang==$ZIG_VERSION"
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "ziglang==$ZIG_VERSION"
    fi
    if ! cargo-zigbuild --version 2>/dev/null | grep -q " $ZIGBUILD_VERSION\$"; then
        log "cargo install cargo-zigbuild $ZIGBUILD_VERSION"
        nice -n 19 cargo install -q --locked cargo-zigbuild --version "$ZIGBUILD_VERSION"
    fi
    local installed
    installed=$(rustup target list --installed)
    for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
        grep -qx "$t" <<<"$installed" || rustup target add "$t"
    done
    rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
}

# Static = no program interpreter and no DT_NEEDED entries.
check_static() {
    local f=$1 out
    out=$(readelf -lW -d "$f" 2>&1) || die "readelf failed on $f"
    if grep -q 'Requesting program interpreter' <<<"$out" || grep -q '(NEEDED)' <<<"$out"; then
        die "$f is not static:"$'\n'"$(grep -E 'interpreter|NEEDED' <<<"$out")"
    fi
    # strip=true in the profile; a symbol table left means the profile was not used.
    if readelf -SW "$f" | grep -q ' \.symtab '; then die "$f is not stripped"; fi
}

arch_of() {
    case $1 in
        x86_64-*) echo amd64 ;;
        aarch64-*) echo arm64 ;;
        armv7-*) echo armv7 ;;
        *) die "unknown target $1" ;;
    esac
}

build_one() {
    local target=$1 arch out start
    arch=$(arch_of "$target")
    # std is built from rust-src for every target (armv7 has no prebuilt musl std at
    # all), with our size profile and without std's `backtrace` feature: the
    # symbolizer (gimli, addr2line, miniz_oxide, rustc-demangle) is dead weight in a
    # stripped binary. Measured: x86_64 -15 % against rustup's prebuilt std.
    # RUSTC_BOOTSTRAP=1 allows these -Z flags on the stable toolchain.
    # `log/release_max_level_debug` compiles out trace! calls (rustls has many);
    # qnetd's most verbose level is debug (-d), as in the C daemon.
    # shellcheck disable=SC2054  # the commas belong to the flags
    local -a extra=(-Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size
                    --features log/release_max_level_debug)
    local -a envs=(RUSTC_BOOTSTRAP=1)
    if [ -n "${QNETD_PREBUILT_STD:-}" ] && [ "$target" != armv7-unknown-linux-musleabihf ]; then
        extra=()   # rustup's std (bigger, no RUSTC_BOOTSTRAP needed)
        envs=()
    fi
    start=$SECONDS
    log "building $target ($profile)"
    # shellcheck disable=SC2086
    env "${envs[@]}" nice -n 19 cargo zigbuild --locked --profile "$profile" --target "$target" \
        --bin qnetd "${extra[@]}" ${QNETD_CARGO_ARGS:-}
    local dir=$profile
    [ "$profile" = dev ] && dir=debug
    out=${CARGO_TARGET_DIR:-$repo/target}/$target/$dir/qnetd
    [ -f "$out" ] || die "no binary at $out"
    check_static "$out"
    mkdir -p "$dist/linux-$arch"
    install -m 0555 "$out" "$dist/linux-$arch/qnetd"
    log "$target: $(stat -c %s "$out") bytes, static, stripped, $((SECONDS - start)) s -> $dist/linux-$arch/qnetd"
}

if [ "${1:-}" = --setup-only ]; then setup; exit 0; fi
[ -n "${QNETD_SKIP_SETUP:-}" ] || setup
for t in "${targets[@]}"; do build_one "$t"; done

#!/usr/bin/env bash
# Short, bounded fuzzing of every cargo-fuzz target in fuzz/fuzz_targets/.
#
#   scripts/fuzz-smoke.sh               # every target, FUZZ_SECONDS (default 30) each
#   scripts/fuzz-smoke.sh frame_decode  # only the named targets
#
# Environment:
#   FUZZ_SECONDS    fuzzing time per target, build time excluded (default 30)
#   FUZZ_TOOLCHAIN  rustup toolchain to use (default: nightly if installed, else the
#                   default toolchain with RUSTC_BOOTSTRAP=1, which cargo-fuzz needs
#                   for -Zsanitizer)
#   FUZZ_NICE       niceness of the build and the run (default 10; the machine is shared)
#
# Installs cargo-fuzz if it is missing. Seeds in fuzz/seeds/<target>/ (committed)
# are read on every run; new inputs go to fuzz/corpus/<target>/ (not committed).
# Exits non-zero as soon as a target crashes, hangs (> 10 s on one input) or does
# not build; the crashing input is left in fuzz/artifacts/<target>/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fuzz_dir=$root/fuzz
seconds=${FUZZ_SECONDS:-30}
niceness=${FUZZ_NICE:-10}

case $seconds in
'' | *[!0-9]*)
    echo "fuzz-smoke: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2
    exit 2
    ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

toolchain=()
if [[ -n ${FUZZ_TOOLCHAIN:-} ]]; then
    toolchain=("+$FUZZ_TOOLCHAIN")
elif command -v rustup >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=(+nightly)
fi
if [[ ${toolchain[0]:-} != +nightly* ]]; then
    # cargo-fuzz passes -Zsanitizer; a stable compiler accepts it with this set.
    export RUSTC_BOOTSTRAP=1
fi

cd "$fuzz_dir"

if (($# > 0)); then
    targets=("$@")
else
    targets=()
    for f in fuzz_targets/*.rs; do
        [[ -e $f ]] || continue
        name=${f#fuzz_targets/}
        targets+=("${name%.rs}")
    done
fi
if ((${#targets[@]} == 0)); then
    echo "fuzz-smoke: no targets in $fuzz_dir/fuzz_targets" >&2
    exit 2
fi

# A file without a [[bin]] entry in fuzz/Cargo.toml would silently not be built.
registered=$(cargo "${toolchain[@]}" fuzz list)
for t in "${targets[@]}"; do
    if ! grep -qx -- "$t" <<<"$registered"; then
        echo "fuzz-smoke: target '$t' is not registered in fuzz/Cargo.toml (add a [[bin]] entry, or use 'cargo fuzz add')" >&2
        exit 2
    fi
done

echo "fuzz-smoke: building ${targets[*]} (toolchain ${toolchain[*]:-default}${RUSTC_BOOTSTRAP:+, RUSTC_BOOTSTRAP=1})"
for t in "${targets[@]}"; do
    nice -n "$niceness" cargo "${toolchain[@]}" fuzz build --debug-assertions "$t"
done

for t in "${targets[@]}"; do
    corpus=("$fuzz_dir/corpus/$t")
    mkdir -p "${corpus[0]}"
    if [[ -d $fuzz_dir/seeds/$t ]]; then
        corpus+=("$fuzz_dir/seeds/$t")
    fi
    echo "fuzz-smoke: running $t for ${seconds}s"
    start=$SECONDS
    if ! nice -n "$niceness" cargo "${toolchain[@]}" fuzz run --debug-assertions "$t" "${corpus[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1; then
        echo "fuzz-smoke: FAILED: $t (crashing input in $fuzz_dir/artifacts/$t/)" >&2
        exit 1
    fi
    echo "fuzz-smoke: $t ok ($((SECONDS - start))s)"
done
echo "fuzz-smoke: all ${#targets[@]} target(s) passed"

#!/usr/bin/env bash
# Short, bounded fuzzing of every cargo-fuzz target in fuzz/fuzz_targets/.
#
#   scripts/fuzz-smoke.sh               # every target, FUZZ_SECONDS (default 30) each
#   scripts/fuzz-smoke.sh frame_decode  # only the named targets
#
# Environment:
#   FUZZ_RUNS       inputs tried per target (default 500000; -1 = no limit)
#   FUZZ_SEED       libFuzzer seed (default 1; 0 = random, i.e. explore)
#   FUZZ_SECONDS    time cap per target, build time excluded (default 60)
#   FUZZ_TOOLCHAIN  rustup toolchain to use (default: nightly if installed, else the
#                   default toolchain with RUSTC_BOOTSTRAP=1, which cargo-fuzz needs
#                   for -Zsanitizer)
#   FUZZ_NICE       niceness of the build and the run (default 10; the machine is shared)
#
# With a fixed seed (the default) the run is reproducible: the same code and the
# same committed seeds in fuzz/seeds/<target>/ give the same inputs here and in CI,
# because new inputs go to a fresh temporary corpus. So CI cannot turn red on a
# lucky draw; a crash it reports is reproducible with the same command. Exploring
# for new crashes is a separate, longer run with FUZZ_SEED=0 (random), which keeps
# its findings in fuzz/corpus/<target>/ (not committed); add every crash it finds
# to fuzz/seeds/<target>/ so that every later run replays it.
# Exits non-zero as soon as a target crashes, hangs (> 10 s on one input) or does
# not build; the crashing input is left in fuzz/artifacts/<target>/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fuzz_dir=$root/fuzz
seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-500000}
seed=${FUZZ_SEED:-1}
niceness=${FUZZ_NICE:-10}

case $seconds in
'' | *[!0-9]*)
    echo "fuzz-smoke: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2
    exit 2
    ;;
esac
case $runs in
-1) ;;
'' | *[!0-9]*)
    echo "fuzz-smoke: FUZZ_RUNS must be a whole number or -1, not '$runs'" >&2
    exit 2
    ;;
esac
case $seed in
'' | *[!0-9]*)
    echo "fuzz-smoke: FUZZ_SEED must be a whole number (0 = random), not '$seed'" >&2
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

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    if [[ $seed == 0 ]]; then
        corpus=("$fuzz_dir/corpus/$t")
    else
        corpus=("$scratch/$t")
    fi
    mkdir -p "${corpus[0]}"
    if [[ -d $fuzz_dir/seeds/$t ]]; then
        corpus+=("$fuzz_dir/seeds/$t")
    fi
    echo "fuzz-smoke: running $t (seed $seed, runs $runs, at most ${seconds}s)"
    start=$SECONDS
    if ! nice -n "$niceness" cargo "${toolchain[@]}" fuzz run --debug-assertions "$t" "${corpus[@]}" -- \
        -seed="$seed" -runs="$runs" -max_total_time="$seconds" -timeout=10 -print_final_stats=1; then
        echo "fuzz-smoke: FAILED: $t (crashing input in $fuzz_dir/artifacts/$t/)" >&2
        exit 1
    fi
    echo "fuzz-smoke: $t ok ($((SECONDS - start))s)"
done
echo "fuzz-smoke: all ${#targets[@]} target(s) passed"

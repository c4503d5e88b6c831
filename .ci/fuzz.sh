#!/usr/bin/env bash
# Runs each cargo-fuzz target for a short while (FUZZ_SECONDS, default 45) when a nightly
# toolchain is available, reporting corpus growth; says so and succeeds when there is none.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

seconds=${FUZZ_SECONDS:-45}
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzzing skipped: no nightly toolchain on this machine (cargo-fuzz needs one)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install --locked --quiet cargo-fuzz
fi

for target in caller_token config webhook; do
    corpus=target/fuzz-corpus/$target
    mkdir -p "$corpus"
    cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    before=$(find "$corpus" -type f | wc -l)
    echo "== fuzz $target for ${seconds}s (corpus: $before inputs)"
    # Crashes land in fuzz/artifacts/$target and fail this script.
    cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>&1 | tail -n 15
    after=$(find "$corpus" -type f | wc -l)
    echo "fuzz $target: corpus $before -> $after inputs, no crash"
done

#!/usr/bin/env bash
# Builds tokenmint with profile-guided optimisation (PGO): the release build again, laid out and
# inlined by what the token path actually runs. BENCHMARKS.md has what it gains under load.
#
#   bench/pgo.sh                  train, then build target/pgo/tokenmint
#   bench/pgo.sh --smoke          short training, then bench/load.sh --smoke on the result (CI)
#
# Steps:
#   1. an instrumented release build (-Cprofile-generate) in target/pgo-generate;
#   2. training: bench/load.sh drives that binary with its own traffic (POST /token, RS256
#      callers, every caller distinct, then each caller asking twice); each server process
#      writes its counts when it exits;
#   3. llvm-profdata merges the counts into target/pgo/tokenmint.profdata;
#   4. the release build again with -Cprofile-use, in target/pgo, copied to target/pgo/tokenmint.
# The flags go to the target only (cargo --target), so build scripts and proc macros are built
# as usual; RUSTFLAGS already set in the environment are kept in both builds. The binary is as
# fast as the training is typical: code the training never ran (other grants, gateway callers,
# error answers) is laid out as cold code, still correct, a little slower. The profile fits
# this source only: run the script again after a change.
#
# Options (defaults in brackets):
#   --smoke            3 s of training per traffic mode (bench/load.sh --smoke), then a smoke
#                      run of the built binary that fails on any error or non-2xx response
#   --out DIR          work directory of the training runs [target/bench-pgo]
# Further options go to bench/load.sh for the training (--duration, --pool, --connections, ...).
#
# Needs what bench/load.sh needs, and llvm-profdata from rustup's llvm-tools component (added
# when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SMOKE=0
OUT=target/bench-pgo
LOAD_ARGS=()
while (($#)); do
    case "$1" in
    --smoke) SMOKE=1 ;;
    --out) OUT=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) LOAD_ARGS+=("$1") ;;
    esac
    shift
done
((SMOKE)) && LOAD_ARGS+=(--smoke)

say() { printf '==> %s\n' "$*" >&2; }

HOST=$(rustc -vV | sed -n 's/^host: //p')
PROFDATA="$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata"
if [[ ! -x $PROFDATA ]]; then
    say "adding rustup's llvm-tools component (llvm-profdata)"
    rustup component add llvm-tools
fi

RAW="$ROOT/target/pgo/raw"
PROFILE="$ROOT/target/pgo/tokenmint.profdata"
rm -rf "$RAW"
mkdir -p "$RAW"

say "instrumented release build (target/pgo-generate)"
CARGO_TARGET_DIR=target/pgo-generate RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-Cprofile-generate=$RAW" \
    cargo build --release ${CI:+--locked} --target "$HOST" --bin tokenmint

say "training: bench/load.sh with the instrumented binary"
LLVM_PROFILE_FILE="$RAW/tokenmint-%p.profraw" bench/load.sh \
    --bin "target/pgo-generate/$HOST/release/tokenmint" --out "$OUT" \
    --no-ceiling --no-startup "${LOAD_ARGS[@]}"

say "merging $(find "$RAW" -name '*.profraw' | wc -l) profiles into $PROFILE"
"$PROFDATA" merge -o "$PROFILE" "$RAW"

say "release build with the profile (target/pgo)"
CARGO_TARGET_DIR=target/pgo RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-Cprofile-use=$PROFILE" \
    cargo build --release ${CI:+--locked} --target "$HOST" --bin tokenmint
BIN=target/pgo/tokenmint
cp "target/pgo/$HOST/release/tokenmint" "$BIN"

if ((SMOKE)); then
    say "smoke run of the profile-guided binary"
    bench/load.sh --smoke --no-build --bin "$BIN" --out "$OUT"
fi
say "profile-guided binary: $BIN"

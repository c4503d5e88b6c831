#!/usr/bin/env bash
# Builds tokenmint with profile-guided optimisation (PGO): the release build again, laid out and
# inlined by what the token path actually runs. BENCHMARKS.md has what it gains under load; the
# Dockerfile runs this script to build the image's binary.
#
#   bench/pgo.sh                  train, then build target/pgo/tokenmint
#   bench/pgo.sh --smoke          the same, then bench/load.sh --smoke on the result (CI)
#
# Steps:
#   1. an instrumented release build (-Cprofile-generate) in target/pgo-generate;
#   2. training: examples/callers.rs signs caller tokens with keys made for the run, the
#      instrumented binary serves bench/tokenmint.toml, and examples/train.rs sends every token
#      twice (RS256 callers, each distinct, then each answered by the verified-caller cache) and
#      a few requests that must be refused; the server writes its counts when it exits;
#   3. llvm-profdata merges the counts into target/pgo/tokenmint.profdata;
#   4. the release build again with -Cprofile-use, in target/pgo, copied to target/pgo/tokenmint.
# Everything is built for an explicit --target, so RUSTFLAGS already set in the environment
# (kept in every build) and the PGO flags reach the target only, never build scripts or proc
# macros. The binary is as fast as the training is typical: code the training never ran (other
# grants, gateway callers) is laid out as cold code, still correct, a little slower. The profile
# fits this source only: run the script again after a change.
#
# Options (defaults in brackets):
#   --smoke            afterwards, a smoke run of the built binary (bench/load.sh --smoke) that
#                      fails on any error or non-2xx response
#   --callers N        caller tokens of the training, each sent twice [20000]
#   --port PORT        the instrumented server's port on 127.0.0.1 [18090]
#   --out DIR          work directory (the training's in DIR/train) [target/bench-pgo]
#
# Needs cargo, and llvm-profdata from rustup's llvm-tools component (added when missing);
# --smoke needs what bench/load.sh needs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SMOKE=0
CALLERS=20000
PORT=18090
OUT=target/bench-pgo
while (($#)); do
    case "$1" in
    --smoke) SMOKE=1 ;;
    --callers) CALLERS=$2; shift ;;
    --port) PORT=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

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

say "instrumented release build (target/pgo-generate), and the training examples"
CARGO_TARGET_DIR=target/pgo-generate RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-Cprofile-generate=$RAW" \
    cargo build --release --locked --target "$HOST" --bin tokenmint
cargo build --release --locked --target "$HOST" --example callers --example train
EXAMPLES=target/$HOST/release/examples

say "training: $CALLERS callers, each twice, and refusals"
umask 077
# Its own directory: its key set is made for this run and fits no other caller pool.
TRAIN=$(bench/prepare-dir.sh "$OUT/train" "$PORT")
"$EXAMPLES/callers" --new-keys --out "$TRAIN" --count "$CALLERS" --tokens "$TRAIN/tokens.txt"
LLVM_PROFILE_FILE="$RAW/tokenmint-%p.profraw" "target/pgo-generate/$HOST/release/tokenmint" \
    serve --config "$TRAIN/tokenmint.toml" >"$TRAIN/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
"$EXAMPLES/train" --url "http://127.0.0.1:$PORT" --tokens "$TRAIN/tokens.txt"
# SIGTERM: the graceful shutdown, after which the process writes its counts on exit.
kill -TERM "$SERVER"
wait "$SERVER" || { echo "the instrumented server exited with $?; log: $TRAIN/server.log" >&2; exit 1; }
trap - EXIT

say "merging $(find "$RAW" -name '*.profraw' | wc -l) profiles into $PROFILE"
"$PROFDATA" merge -o "$PROFILE" "$RAW"

say "release build with the profile (target/pgo)"
CARGO_TARGET_DIR=target/pgo RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-Cprofile-use=$PROFILE" \
    cargo build --release --locked --target "$HOST" --bin tokenmint
BIN=target/pgo/tokenmint
cp "target/pgo/$HOST/release/tokenmint" "$BIN"

if ((SMOKE)); then
    say "smoke run of the profile-guided binary"
    bench/load.sh --smoke --no-build --bin "$BIN" --out "$OUT"
fi
say "profile-guided binary: $BIN"

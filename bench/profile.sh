#!/usr/bin/env bash
# Profiles tokenmint under the load of bench/load.sh with perf (Debian: linux-perf).
#
#   bench/profile.sh [--mode distinct|twice] [--duration S] [load.sh options...]
#
# Builds tokenmint with symbols and frame pointers into target/profiling (the release profile
# strips symbols), runs bench/load.sh with that binary and `--perf`, and writes, per run:
#   DIR/perf-tokenmint-<mode>-self.txt      flat profile: samples by function, self time
#   DIR/perf-tokenmint-<mode>-children.txt  inclusive time (function and everything it calls)
# DIR is load.sh's --out (default target/bench). perf's own overhead and the missing ceiling
# run make the load numbers of a profiling run unfit for BENCHMARKS.md: use bench/load.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
command -v perf >/dev/null || { echo "perf is missing (Debian: apt-get install linux-perf)" >&2; exit 2; }

OUT=target/bench
MODE=distinct
args=()
while (($#)); do
    case "$1" in
    --out) OUT=$2; args+=("$1" "$2"); shift ;;
    --mode) MODE=$2; shift ;;
    *) args+=("$1") ;;
    esac
    shift
done

echo "==> building tokenmint with symbols and frame pointers (target/profiling)" >&2
CARGO_TARGET_DIR=target/profiling \
    CARGO_PROFILE_RELEASE_STRIP=none \
    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    RUSTFLAGS="-C force-frame-pointers=yes" \
    cargo build --release --bin tokenmint

bench/load.sh --bin target/profiling/release/tokenmint --perf --no-ceiling --no-startup \
    --mode "$MODE" "${args[@]}"

for data in "$OUT"/perf-tokenmint-*.data; do
    base=${data%.data}
    perf report -i "$data" --no-children --sort symbol --stdio -g none --percent-limit 0.5 \
        2>/dev/null >"$base-self.txt"
    perf report -i "$data" --children --sort symbol --stdio -g none --percent-limit 1.5 \
        2>/dev/null >"$base-children.txt"
    echo "==> $base-self.txt (top of the flat profile)"
    grep -v '^#' "$base-self.txt" | grep -v '^$' | head -40
    echo "==> $base-children.txt (top of the inclusive profile)"
    grep -v '^#' "$base-children.txt" | grep -v '^$' | head -50
done

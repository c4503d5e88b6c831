#!/usr/bin/env bash
# Compares two tokenmint binaries under load, in interleaved runs: for changes smaller than the
# drift of a shared machine's speed between one full bench/load.sh run and the next.
#
#   bench/compare.sh A B [--pairs N] [--mode distinct|twice] [bench/load.sh options...]
#
# Runs bench/load.sh with binary A, then with binary B, N times (5 by default): one traffic
# mode (distinct callers by default), no ceiling, no start-to-ready timing, so A and B see the
# same host within seconds of each other. Prints each run's CPU per request, throughput and
# p99, each pair's difference B - A, and the median difference. Further options go to
# bench/load.sh (--duration, --pool, --connections, --out, ...). Builds only the examples
# load.sh needs; build the two binaries first, e.g. `git worktree add ../base <commit>` and
# `cargo build --release` in each.
# Exits 1 when a run had an error or non-2xx response, as bench/load.sh does.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if (($# < 2)) || [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
fi
A=$(readlink -f "$1")
B=$(readlink -f "$2")
shift 2
for bin in "$A" "$B"; do
    [[ -x $bin ]] || { echo "not an executable: $bin" >&2; exit 2; }
done

PAIRS=5
MODE=distinct
OUT=target/bench-compare
LOAD_ARGS=()
while (($#)); do
    case "$1" in
    --pairs) PAIRS=$2; shift ;;
    --mode) MODE=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) LOAD_ARGS+=("$1") ;;
    esac
    shift
done

[[ $MODE == distinct || $MODE == twice ]] || { echo "--mode is distinct or twice" >&2; exit 2; }

cargo build --release ${CI:+--locked} --example callers

# run BIN: one run in $MODE; prints "cpu_us req_per_s p99_ms".
run() {
    bench/load.sh --no-build --no-ceiling --no-startup --mode "$MODE" --bin "$1" --out "$OUT" \
        "${LOAD_ARGS[@]}" >"$LOG" 2>&1 || { cat "$LOG" >&2; return 1; }
    # | tokenmint, RS256, distinct | requests | req/s | p50 ms | p99 ms | server CPU µs/req | ...
    awk -F' *[|] *' -v mode="$MODE" '$2 ~ "^tokenmint, .*, " mode "$" { print $7, $4, $6 }' \
        "$OUT/results.md"
}

mkdir -p "$OUT"
# Inside OUT, so that no file beside it (a log the caller keeps as OUT.log, say) is overwritten.
LOG=$OUT/run.log
DIFFS=()
echo "A: $A"
echo "B: $B"
for i in $(seq 1 "$PAIRS"); do
    read -r cpu_a rps_a p99_a < <(run "$A")
    read -r cpu_b rps_b p99_b < <(run "$B")
    diff=$(awk -v a="$cpu_a" -v b="$cpu_b" 'BEGIN { printf "%+.1f", b - a }')
    DIFFS+=("$diff")
    printf 'pair %d: A %s µs/req (%s req/s, p99 %s ms)  B %s µs/req (%s req/s, p99 %s ms)  B - A %s µs\n' \
        "$i" "$cpu_a" "$rps_a" "$p99_a" "$cpu_b" "$rps_b" "$p99_b" "$diff"
done
printf '%s\n' "${DIFFS[@]}" | sort -g | awk '
    { d[NR] = $1; if ($1 < 0) lower++ }
    END {
        median = NR % 2 ? d[(NR + 1) / 2] : (d[NR / 2] + d[NR / 2 + 1]) / 2
        printf "median B - A: %+.1f µs CPU per request; B lower in %d of %d pairs\n", median, lower, NR
    }'

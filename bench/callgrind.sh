#!/usr/bin/env bash
# Counts the CPU instructions of one token request with callgrind (valgrind), in process: the
# request path of bench/load.sh's configuration without sockets or the scheduler. Unlike CPU
# time on a shared machine, the count does not drift with the host's speed, so it shows changes
# of a few per cent that load runs cannot.
#
#   bench/callgrind.sh [--out DIR] [--requests N]
#
# Builds examples/requests.rs with symbols (target/profiling, as bench/profile.sh does), signs N
# + 200 RS256 caller tokens with distinct subjects, then runs under callgrind, counting from the
# end of set-up (examples/requests.rs calls measure_from_here there), each twice (200 and N + 200
# tokens, so what is left of start-up and the exit cancels out):
#   - N token requests through the router (examples/requests.rs --config), the JSON audit
#     record written to a sink;
#   - the same with one caller's token every time, so all but the first are answered from the
#     verified-caller cache;
#   - N bare RSA verifications of the distinct tokens (--raw-verify), the reference.
# Prints the instructions per request (distinct callers, then cached), per verification and
# the ratio, and writes the inclusive profile of the larger request run to
# DIR/callgrind-requests.txt.
# Needs valgrind (Debian: apt-get install valgrind). DIR defaults to target/bench/callgrind; N to 1000.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
command -v valgrind >/dev/null || { echo "valgrind is missing (Debian: apt-get install valgrind)" >&2; exit 2; }

OUT=target/bench/callgrind
REQUESTS=1000
while (($#)); do
    case "$1" in
    --out) OUT=$2; shift ;;
    --requests) REQUESTS=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
BASE=200
TOTAL=$((BASE + REQUESTS))

echo "==> building examples/requests and examples/callers with symbols (target/profiling)" >&2
CARGO_TARGET_DIR=target/profiling \
    CARGO_PROFILE_RELEASE_STRIP=none \
    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build --release ${CI:+--locked} --example requests --example callers
EXAMPLES=target/profiling/release/examples

umask 077
OUT=$(bench/prepare-dir.sh "$OUT" "18080")
TOKENS="$OUT/callers-RS256-$TOTAL.txt"
"$EXAMPLES/callers" --out "$OUT" --count "$TOTAL" --alg RS256 --tokens "$TOKENS" >/dev/null
SAME="$OUT/same-caller-$TOTAL.txt"
awk -v n="$TOTAL" 'NR == 1 { for (i = 0; i < n; i++) print; exit }' "$TOKENS" >"$SAME"

# Instructions of one run of examples/requests with these arguments, from the end of its set-up
# (measure_from_here) to its exit.
instructions() {
    local out=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file="$out" --zero-before='*measure_from_here' \
        "$EXAMPLES/requests" "$@" >/dev/null 2>&1
    awk '/^totals:/ { print $2 }' "$out"
}

declare -A PER
for run in requests requests-cached raw-verify; do
    case $run in
    requests) args=(--tokens "$TOKENS" --config "$OUT/tokenmint.toml") ;;
    requests-cached) args=(--tokens "$SAME" --config "$OUT/tokenmint.toml") ;;
    raw-verify) args=(--tokens "$TOKENS" --raw-verify "$OUT/jwks.json") ;;
    esac
    echo "==> callgrind: $run, $BASE and $TOTAL tokens" >&2
    small=$(instructions "$OUT/callgrind-$run-small.out" "${args[@]}" --count "$BASE")
    large=$(instructions "$OUT/callgrind-$run.out" "${args[@]}" --count "$TOTAL")
    PER[$run]=$(((large - small) / REQUESTS))
done

callgrind_annotate --inclusive=yes "$OUT/callgrind-requests.out" 2>/dev/null >"$OUT/callgrind-requests.txt" || true
echo "instructions per token request (in process): ${PER[requests]}"
echo "… the caller's token cached:                 ${PER[requests-cached]}"
echo "instructions per RSA-2048 verification:      ${PER[raw-verify]}"
awk -v a="${PER[requests]}" -v b="${PER[raw-verify]}" \
    'BEGIN { printf "token request / RSA verification:           %.2f\n", a / b }'
echo "inclusive profile of the $TOTAL-request run: $OUT/callgrind-requests.txt"

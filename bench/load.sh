#!/usr/bin/env bash
# Load benchmark of tokenmint on this machine, loopback only (BENCHMARKS.md explains the method).
#
#   bench/load.sh                 full run: both traffic modes, the HTTP ceiling, start-to-ready
#   bench/load.sh --smoke         a few seconds per mode; exits 1 on any error or non-2xx (CI)
#
# Steps: build the release binary and the examples; write a JWKS file and a pool of caller JWTs
# with distinct subjects (examples/callers.rs, cached in the output directory); start tokenmint
# with a JWKS-file authenticator; drive POST /token with wrk (bench/load.lua) in each traffic
# mode, restarting the server between modes; run the same wrk command against a bare axum
# server answering a fixed JSON (examples/ceiling.rs), then (RS256) against the same server
# verifying each caller's RSA signature first, the floor of any token server; time spawn ->
# /readyz 200 (examples/startup.rs). The server's CPU time comes from /proc/<pid>/stat (utime +
# stime), its peak RSS from VmHWM in /proc/<pid>/status, and how often its threads were
# preempted (the load generator shares the cores) from nonvoluntary_ctxt_switches in
# /proc/<pid>/task/*/status. openssl's RSA verification, the reference cost, is timed before
# and after the runs.
#
# Options (defaults in brackets):
#   --duration S       seconds of load per run [10; smoke 3]
#   --connections N    wrk connections [64; smoke 16]
#   --threads N        wrk threads [2]
#   --mode M           distinct, twice or both [both]
#   --alg A            RS256 or ES256 callers [RS256]
#   --pool N           caller tokens in the pool [600000; smoke 4000]
#   --gap N            twice mode: requests of one wrk thread between a caller's two asks [512]
#   --startup-runs N   start-to-ready samples [20; smoke 3]
#   --out DIR          work and result files [target/bench]
#   --port P           tokenmint's port; the ceiling uses P+1 [18080]
#   --no-build         use the binaries already in target/release
#   --no-ceiling       skip the bare axum runs (ceiling and floor)
#   --no-startup       skip the start-to-ready measurement
#   --bin PATH         the tokenmint binary to run [target/release/tokenmint]
#   --perf             record each tokenmint run with `perf record -g` into DIR/perf-<run>.data
#                      (bench/profile.sh builds a binary with symbols and reports on them)
#
# Prints a Markdown table and writes it, with the raw RESULT lines, to DIR/results.md.
# Needs wrk (Debian: apt-get install wrk), curl and, outside smoke mode, openssl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SMOKE=0
DURATION=
CONNECTIONS=
THREADS=2
MODES=both
ALG=RS256
POOL=
GAP=512
STARTUP_RUNS=
OUT=target/bench
PORT=18080
BUILD=1
CEILING=1
BIN=target/release/tokenmint
PERF=0
STARTUP_MEASURE=1

while (($#)); do
    case "$1" in
    --smoke) SMOKE=1 ;;
    --duration) DURATION=$2; shift ;;
    --connections) CONNECTIONS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --mode) MODES=$2; shift ;;
    --alg) ALG=$2; shift ;;
    --pool) POOL=$2; shift ;;
    --gap) GAP=$2; shift ;;
    --startup-runs) STARTUP_RUNS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --port) PORT=$2; shift ;;
    --no-build) BUILD=0 ;;
    --no-ceiling) CEILING=0 ;;
    --bin) BIN=$2; shift ;;
    --perf) PERF=1 ;;
    --no-startup) STARTUP_MEASURE=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((SMOKE)); then
    : "${DURATION:=3}" "${CONNECTIONS:=16}" "${POOL:=4000}" "${STARTUP_RUNS:=3}"
    CEILING=0
else
    : "${DURATION:=10}" "${CONNECTIONS:=64}" "${POOL:=600000}" "${STARTUP_RUNS:=20}"
fi
case "$MODES" in
both) MODES="distinct twice" ;;
distinct | twice) ;;
*) echo "--mode must be distinct, twice or both" >&2; exit 2 ;;
esac
case "$ALG" in RS256 | ES256) ;; *) echo "--alg must be RS256 or ES256" >&2; exit 2 ;; esac
CEILING_PORT=$((PORT + 1))

for tool in wrk curl; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (Debian: apt-get install $tool)" >&2; exit 2; }
done

say() { printf '==> %s\n' "$*" >&2; }

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

if ((BUILD)); then
    say "building the release binary and the benchmark examples"
    cargo build --release ${CI:+--locked} --bin tokenmint --example callers --example ceiling --example startup
fi
EXAMPLES=target/release/examples

umask 077
OUT=$(bench/prepare-dir.sh "$OUT" "$PORT")

# Caller tokens are valid for a day; a pool older than 12 hours is made again.
TOKENS="$OUT/callers-$ALG-$POOL.txt"
if [[ -s $TOKENS && -s $OUT/jwks.json ]] && [[ -z $(find "$TOKENS" -mmin +720) ]]; then
    say "reusing $POOL $ALG caller tokens in $TOKENS"
else
    say "signing $POOL $ALG caller tokens (distinct subjects)"
    "$EXAMPLES/callers" --out "$OUT" --count "$POOL" --alg "$ALG" --tokens "$TOKENS"
fi
# The sample request uses the last token, which no run reaches unless the pool ran out.
SAMPLE_TOKEN=$(tail -n 1 "$TOKENS")

# µs of one RSA-2048 verification by openssl: the reference cost, timed again after the runs so
# that the host's drift between the two shows.
rsa_verify_us() {
    openssl speed -seconds 2 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ { printf "%.1f", 1e6 / $NF }'
}
RSA_VERIFY_US=
if ((!SMOKE)) && command -v openssl >/dev/null; then
    say "openssl speed rsa2048 (reference cost of one RSA-2048 verification)"
    RSA_VERIFY_US=$(rsa_verify_us)
fi
CLK_TCK=$(getconf CLK_TCK)

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_ready() { # url pid
    for _ in $(seq 1 500); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" || true) == 200 ]]; then
            return 0
        fi
        kill -0 "$2" 2>/dev/null || { echo "the server exited before it was ready" >&2; return 1; }
        sleep 0.02
    done
    echo "not ready after 10 s: $1" >&2
    return 1
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
preemptions() { # pid: involuntary context switches of all its threads so far
    cat "/proc/$1"/task/*/status 2>/dev/null |
        awk '/^nonvoluntary_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}
vm_hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
stop() { # pid
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# run_wrk NAME PORT MODE: runs wrk against the server whose pid is $SERVER; sets R_* variables.
run_wrk() {
    local name=$1 port=$2 mode=$3 before after preempted line strict=0 perf=
    ((SMOKE)) && strict=1
    if ((PERF)) && [[ $name == tokenmint-* ]]; then
        perf record -q -e cpu-clock -F 999 -g -p "$SERVER" -o "$OUT/perf-$name.data" \
            -- sleep "$DURATION" 2>"$OUT/perf-$name.log" &
        perf=$!
    fi
    before=$(cpu_ticks "$SERVER")
    preempted=$(preemptions "$SERVER")
    line=$(TOKENS=$TOKENS THREADS=$THREADS MODE=$mode GAP=$GAP STRICT=$strict \
        wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 5s \
        -s bench/load.lua "http://127.0.0.1:$port" | tee "$OUT/wrk-$name.txt" | grep '^RESULT ')
    after=$(cpu_ticks "$SERVER")
    preempted=$(($(preemptions "$SERVER") - preempted))
    if [[ -n $perf ]]; then wait "$perf" || true; fi
    RESULTS+=("$name $line")
    # shellcheck disable=SC2086 # word splitting of key=value pairs is the point
    local $(sed 's/^RESULT //' <<<"$line")
    R_REQUESTS=$requests
    R_RPS=$(awk -v r="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
    R_P50=$(awk -v v="$p50_us" 'BEGIN { printf "%.2f", v / 1000 }')
    R_P99=$(awk -v v="$p99_us" 'BEGIN { printf "%.2f", v / 1000 }')
    R_CPU_US=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v r="$requests" \
        'BEGIN { printf "%.1f", r ? t / hz * 1e6 / r : 0 }')
    R_ERRORS=$((connect + read + write + status + timeout + non2xx))
    R_WRAPPED=$wrapped
    R_HWM_MB=$(awk -v kb="$(vm_hwm_kb "$SERVER")" 'BEGIN { printf "%.1f", kb / 1024 }')
    R_PREEMPT=$(awk -v p="$preempted" -v r="$requests" 'BEGIN { printf "%.2f", r ? p / r : 0 }')
}

# ratio CPU_US: CPU per request in RSA-2048 verifications (n/a without openssl's figure).
ratio() {
    if [[ -n $RSA_VERIFY_US ]]; then
        awk -v c="$1" -v r="$RSA_VERIFY_US" 'BEGIN { printf "%.2f", c / r }'
    else
        echo n/a
    fi
}

RESULTS=()
ROWS=()
FAILED=0
TM_RPS=
TM_CPU_US=
FLOOR_CPU_US=

for mode in $MODES; do
    port_free "$PORT" || { echo "port $PORT is in use" >&2; exit 2; }
    say "tokenmint, $ALG callers, mode $mode: $CONNECTIONS connections, ${DURATION}s"
    "$BIN" --config "$OUT/tokenmint.toml" serve >"$OUT/tokenmint-$mode.log" 2>&1 &
    SERVER=$!
    PIDS+=("$SERVER")
    wait_ready "http://127.0.0.1:$PORT/readyz" "$SERVER"
    # One request by hand: checks the set-up and gives the ceiling a real response to send.
    code=$(curl -s -o "$OUT/response.json" -w '%{http_code}' -X POST \
        -H "Authorization: Bearer $SAMPLE_TOKEN" -H 'Content-Type: application/json' \
        -d '{"grants":["voice","video"],"room":"support-lobby"}' "http://127.0.0.1:$PORT/token")
    if [[ $code != 200 ]]; then
        echo "sample request answered $code: $(cat "$OUT/response.json")" >&2
        exit 1
    fi
    run_wrk "tokenmint-$mode" "$PORT" "$mode"
    stop "$SERVER"
    minted=$(grep -c '"token_minted"' "$OUT/tokenmint-$mode.log" || true)
    [[ $mode == distinct ]] && TM_RPS=$R_RPS TM_CPU_US=$R_CPU_US
    ROWS+=("| tokenmint, $ALG, $mode | $R_REQUESTS | $R_RPS | $R_P50 | $R_P99 | $R_CPU_US | $(ratio "$R_CPU_US") | $R_HWM_MB | $R_ERRORS | $R_WRAPPED | $R_PREEMPT |")
    say "$mode: $R_RPS req/s, p50 $R_P50 ms, p99 $R_P99 ms, $R_CPU_US µs CPU/req, peak RSS $R_HWM_MB MB, errors $R_ERRORS, audit records $minted"
    if ((R_ERRORS > 0 || R_REQUESTS == 0)); then
        echo "FAIL: $mode run had $R_ERRORS errors or non-2xx responses ($R_REQUESTS requests)" >&2
        FAILED=1
    fi
    if [[ $mode == distinct && $R_WRAPPED -gt 0 ]] && ((!SMOKE)); then
        echo "WARNING: the pool ran out ($R_WRAPPED requests reused a token): rerun with a larger --pool" >&2
    fi
done

CEILING_RPS=
if ((CEILING)); then
    port_free "$CEILING_PORT" || { echo "port $CEILING_PORT is in use" >&2; exit 2; }
    say "bare axum ceiling (fixed JSON of $(wc -c <"$OUT/response.json") bytes), same wrk command"
    "$EXAMPLES/ceiling" --listen "127.0.0.1:$CEILING_PORT" --body-file "$OUT/response.json" \
        >"$OUT/ceiling.log" 2>&1 &
    SERVER=$!
    PIDS+=("$SERVER")
    wait_ready "http://127.0.0.1:$CEILING_PORT/readyz" "$SERVER"
    run_wrk ceiling "$CEILING_PORT" distinct
    stop "$SERVER"
    CEILING_RPS=$R_RPS
    ROWS+=("| bare axum ceiling | $R_REQUESTS | $R_RPS | $R_P50 | $R_P99 | $R_CPU_US | n/a | $R_HWM_MB | $R_ERRORS | n/a | $R_PREEMPT |")
    if [[ $ALG == RS256 ]]; then
        say "floor: the ceiling plus one RSA verification of the caller's JWT, same wrk command"
        "$EXAMPLES/ceiling" --listen "127.0.0.1:$CEILING_PORT" --body-file "$OUT/response.json" \
            --verify-jwks "$OUT/jwks.json" >"$OUT/floor.log" 2>&1 &
        SERVER=$!
        PIDS+=("$SERVER")
        wait_ready "http://127.0.0.1:$CEILING_PORT/readyz" "$SERVER"
        run_wrk floor "$CEILING_PORT" distinct
        stop "$SERVER"
        FLOOR_CPU_US=$R_CPU_US
        if ((R_ERRORS > 0 || R_REQUESTS == 0)); then
            echo "FAIL: the floor run had $R_ERRORS errors or non-2xx responses ($R_REQUESTS requests)" >&2
            FAILED=1
            FLOOR_CPU_US=
        fi
        ROWS+=("| floor: ceiling + RSA verify | $R_REQUESTS | $R_RPS | $R_P50 | $R_P99 | $R_CPU_US | $(ratio "$R_CPU_US") | $R_HWM_MB | $R_ERRORS | n/a | $R_PREEMPT |")
    fi
fi

STARTUP="start to ready: not measured"
if ((STARTUP_MEASURE)); then
    say "start to ready (spawn -> /readyz 200), $STARTUP_RUNS runs"
    port_free "$PORT" || { echo "port $PORT is in use" >&2; exit 2; }
    STARTUP=$("$EXAMPLES/startup" --runs "$STARTUP_RUNS" --url "http://127.0.0.1:$PORT/readyz" \
        -- "$BIN" --config "$OUT/tokenmint.toml" serve)
fi

RSA_AFTER_US=
if [[ -n $RSA_VERIFY_US ]]; then
    say "openssl speed rsa2048 again"
    RSA_AFTER_US=$(rsa_verify_us)
fi

{
    echo "## bench/load.sh results"
    echo
    echo "- commit: ${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')}"
    echo "- machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "- load: wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s, POST /token, $ALG callers, pool $POOL, gap $GAP"
    [[ -n $RSA_VERIFY_US ]] &&
        echo "- openssl speed rsa2048: one verification = $RSA_VERIFY_US µs (the ratios' reference; $RSA_AFTER_US µs after the runs)"
    echo
    echo "| run | requests | req/s | p50 ms | p99 ms | server CPU µs/req | CPU ÷ RSA verify | peak RSS MB | errors | reused tokens | preemptions /req |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    if [[ -n $CEILING_RPS && -n $TM_RPS ]]; then
        echo "- tokenmint (distinct callers) / bare axum ceiling throughput: $(awk -v a="$TM_RPS" -v b="$CEILING_RPS" 'BEGIN { printf "%.2f", a / b }')"
    fi
    if [[ -n $FLOOR_CPU_US && -n $TM_CPU_US ]]; then
        echo "- tokenmint (distinct callers) CPU per request / floor's: $(awk -v a="$TM_CPU_US" -v b="$FLOOR_CPU_US" 'BEGIN { printf "%.2f", a / b }')"
    fi
    echo "- $STARTUP"
    echo
    echo '```text'
    printf '%s\n' "${RESULTS[@]}"
    echo '```'
} | tee "$OUT/results.md"

if ((FAILED)); then
    exit 1
fi

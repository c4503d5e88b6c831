#!/usr/bin/env bash
# CI smoke run of the load benchmark (bench/load.sh --smoke): a few seconds of POST /token per
# traffic mode against the release binary on 127.0.0.1, failing on any connection error, timeout
# or non-2xx response. It asserts no timing: CI machines are shared and timings there mean
# nothing. Installs wrk and curl from Debian when they are missing (runs as root in CI). Then
# runs examples/requests.rs, the driver of bench/callgrind.sh, on the same configuration and
# callers without valgrind: it fails unless every request is answered 200 and every raw
# signature check passes. Last, one smoke-sized pair of bench/compare.sh (the release binary
# against itself), so the comparison script cannot rot either.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

missing=()
for tool in wrk curl; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

OUT=target/bench-smoke
bench/load.sh --smoke --out "$OUT" "$@"

cargo build --release ${CI:+--locked} --example requests
tokens=$(ls "$OUT"/callers-RS256-*.txt | head -n 1)
target/release/examples/requests --config "$OUT/tokenmint.toml" --tokens "$tokens" --count 1000
target/release/examples/requests --raw-verify "$OUT/jwks.json" --tokens "$tokens" --count 1000
echo "examples/requests: 1000 token requests in process and 1000 raw verifications passed"

bench/compare.sh target/release/tokenmint target/release/tokenmint --pairs 1 --smoke --out "$OUT"

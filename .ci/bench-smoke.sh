#!/usr/bin/env bash
# CI smoke run of the load benchmark (bench/load.sh --smoke): a few seconds of POST /token per
# traffic mode against the release binary on 127.0.0.1, failing on any connection error, timeout
# or non-2xx response. It asserts no timing: CI machines are shared and timings there mean
# nothing. Installs wrk and curl from Debian when they are missing (runs as root in CI).
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

exec bench/load.sh --smoke --out target/bench-smoke "$@"

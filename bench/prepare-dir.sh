#!/usr/bin/env bash
# Prepares the output directory of a benchmark script and prints its absolute path:
#
#   OUT=$(bench/prepare-dir.sh DIR PORT)
#
# writes DIR/api_key_secret (the signing key's secret of the bench configuration) and
# DIR/tokenmint.toml (bench/tokenmint.toml with @DIR@ and @PORT@ filled in). The caller's umask
# applies; the benchmark scripts set 077.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR=$1
PORT=$2
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
printf '%s' "bench_api_key_secret_0123456789ab" >"$DIR/api_key_secret"
sed -e "s|@DIR@|$DIR|g" -e "s|@PORT@|$PORT|g" bench/tokenmint.toml >"$DIR/tokenmint.toml"
echo "$DIR"

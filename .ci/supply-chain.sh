#!/usr/bin/env bash
# Supply chain: licenses, bans and sources with cargo-deny, known vulnerabilities with
# cargo-audit offline against the RustSec snapshot shipped in ../shared/tools.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

tools=../shared/tools
db=target/advisory-db

for tool in cargo-deny cargo-audit; do
    if ! command -v "$tool" >/dev/null; then
        echo "installing $tool"
        cargo install --locked --quiet "$tool"
    fi
done

if [ -x "$tools/advisory-db.sh" ] || [ -f "$tools/advisory-db.sh" ]; then
    bash "$tools/advisory-db.sh" "$db"
else
    echo "no advisory snapshot at $tools; cannot audit offline" >&2
    exit 1
fi

echo "== cargo deny check licenses bans sources"
cargo deny --locked check --hide-inclusion-graph licenses bans sources

echo "== cargo audit (offline snapshot)"
cargo audit --db "$db" --no-fetch --deny warnings

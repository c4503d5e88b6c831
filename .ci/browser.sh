#!/usr/bin/env bash
# Browser tests: tokenmint's CORS in headless Chromium, through the example page of examples/web/
# (tests/browser/README.md). Installs what they need, builds the release binary if it is stale,
# runs them, and says how long that took.
#
# Runs as root on a fresh Debian machine with node (>= 20) and npm present, from any directory.
# Starts tokenmint on 127.0.0.1:8080 and page servers on 127.0.0.1:3000 and :3001, so those ports
# must be free; everything it starts is stopped before it exits.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
# An upper bound for the whole node run (the tests bound each step far more tightly).
TEST_TIMEOUT=${BROWSER_TEST_TIMEOUT:-300}

started=$SECONDS
step() {
    printf '\n==> [%4ds] %s\n' "$((SECONDS - started))" "$*"
}

step "chromium"
if [[ ! -x $CHROMIUM ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# Debian's launcher script prints a harmless shell warning on some machines; keep only the version.
"$CHROMIUM" --version 2>/dev/null
node --version

step "npm ci (tests/browser)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

step "cargo build --release (no-op when up to date)"
cargo build --release --locked

step "browser tests"
test_started=$SECONDS
(
    cd tests/browser
    CHROMIUM=$CHROMIUM timeout --kill-after=10 "$TEST_TIMEOUT" \
        node --test --test-concurrency=1 --test-reporter=spec \
        token-client.test.mjs browser.test.mjs
)
step "browser tests passed in $((SECONDS - test_started)) s ($((SECONDS - started)) s with setup)"

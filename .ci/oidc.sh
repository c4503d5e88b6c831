#!/usr/bin/env bash
# End-to-end test against a real OpenID provider (tests/oidc/): oidc-provider from npm on
# 127.0.0.1, a user logging in through its dev interactions, the JWT access token sent to the
# release tokenmint, the minted Twilio token checked with Twilio's Python library; then a token
# for another resource (401) and a provider key rotation (one JWKS refetch, then verified).
#
# Usage: .ci/oidc.sh                 (from any directory; exit 0 only when every test passes)
# Environment:
#   TOKENMINT_BIN   use this binary instead of building target/release/tokenmint
#   OIDC_TIMEOUT    hard limit for the node test run, in seconds (default 300)
#
# Needs node >= 20 and npm. Writes only under target/ (the venv target/oidc-venv, the TAP report
# target/oidc/) and tests/oidc/node_modules/ (git-ignored). The last line is
# `oidc: N passed, M failed`.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
ROOT=$PWD

TWILIO_PY='twilio>=9.13,<10' # the same range as the compat check (.ci/run)
VENV=$ROOT/target/oidc-venv
WORK=$ROOT/target/oidc
RUN_TIMEOUT=${OIDC_TIMEOUT:-300}

step() {
    printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"
}

fail() {
    echo "oidc: $*"
    echo "oidc: 0 passed, 1 failed"
    exit 1
}

step "tokenmint release binary"
if [[ -n ${TOKENMINT_BIN:-} ]]; then
    BIN=$(readlink -f "$TOKENMINT_BIN")
else
    # A no-op when the binary is up to date; a stale binary would test old code.
    cargo build --release --locked
    BIN=$ROOT/target/release/tokenmint
fi
[[ -x $BIN ]] || fail "$BIN is not an executable"
echo "$BIN"

step "node and the test's npm packages (tests/oidc, npm ci)"
command -v node >/dev/null || fail "node is not installed"
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 20)) || fail "node $(node --version) is too old; 20 or later is needed"
node --version
(cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)
node -p '"oidc-provider " + require("./tests/oidc/node_modules/oidc-provider/package.json").version'

step "python venv for Twilio's library ($VENV)"
# Debian's python3 ships without ensurepip unless python3-venv is installed.
if ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
fi
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet "$TWILIO_PY"
"$VENV/bin/python" -c 'import twilio; print("twilio (Python)", twilio.__version__)'

step "node --test tests/oidc/oidc.test.mjs"
rm -rf "$WORK"
mkdir -p "$WORK"
status=0
# The test starts and stops the provider and tokenmint itself; `timeout` bounds the whole run.
mapfile -t unset_tokenmint < <(compgen -e | grep '^TOKENMINT' | sed 's/^/--unset=/' || true)
env "${unset_tokenmint[@]}" TOKENMINT_BIN="$BIN" OIDC_PYTHON="$VENV/bin/python" \
    timeout --kill-after=10 "$RUN_TIMEOUT" \
    node --test --test-concurrency=1 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$WORK/results.tap" \
    tests/oidc/oidc.test.mjs || status=$?
if ((status == 124 || status == 137)); then
    echo "oidc: the test run exceeded ${RUN_TIMEOUT}s"
fi

passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$WORK/results.tap" | tail -n 1)
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$WORK/results.tap" | tail -n 1)
cancelled=$(sed -n 's/^# cancelled \([0-9]*\)$/\1/p' "$WORK/results.tap" | tail -n 1)
if [[ -z $passed || -z $failed ]]; then
    # No summary: the run died before the end.
    passed=${passed:-0}
    failed=$((${failed:-0} + 1))
fi
failed=$((failed + ${cancelled:-0}))
if ((status != 0 && failed == 0)); then
    failed=1
fi
echo "oidc: $passed passed, $failed failed"
((failed == 0))

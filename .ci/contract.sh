#!/usr/bin/env bash
# Contract test: schemathesis (PyPI) against openapi.yaml and a running release tokenmint, once
# without credentials and once with a valid caller JWT, all checks (`-c all`). Zero failures
# required. Decisions and how to read a failure: tests/contract/README.md.
#
# Usage: .ci/contract.sh            (from any directory; exit 0 only when both runs pass)
# Environment:
#   CONTRACT_MAX_EXAMPLES  test cases per operation and phase (default 100)
#   CONTRACT_TIMEOUT       hard limit for each schemathesis run, in seconds (default 600)
#   CONTRACT_SEED          a schemathesis seed, to replay a run (default: a new one each run;
#                          every run prints its seed)
#   TOKENMINT_BIN          use this binary instead of building target/release/tokenmint
#
# Everything it writes stays under target/: the venv (target/contract-venv), the server log and
# the JUnit reports (target/contract/). The server listens on 127.0.0.1 on a port the OS picks,
# and is stopped when the script exits, whatever happens.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
ROOT=$PWD

SCHEMATHESIS_PY='schemathesis==4.32.5'
PYJWT_PY='pyjwt>=2.8,<3'
VENV=$ROOT/target/contract-venv
WORK=$ROOT/target/contract
MAX_EXAMPLES=${CONTRACT_MAX_EXAMPLES:-100}
RUN_TIMEOUT=${CONTRACT_TIMEOUT:-600}
CONFIG=$ROOT/tests/contract/contract.toml
ST_CONFIG=$ROOT/tests/contract/schemathesis.toml
export SCHEMATHESIS_HOOKS=$ROOT/tests/contract/hooks.py

step() {
    printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"
}

step "tokenmint release binary"
if [[ -n ${TOKENMINT_BIN:-} ]]; then
    BIN=$(readlink -f "$TOKENMINT_BIN")
else
    # A no-op when the binary is up to date; a stale binary would test old code.
    cargo build --release --locked
    BIN=$ROOT/target/release/tokenmint
fi
[[ -x $BIN ]] || { echo "contract: $BIN is not an executable"; exit 1; }
echo "$BIN"

step "python venv ($VENV)"
# Debian's python3 ships without ensurepip unless python3-venv is installed.
if ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
fi
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet "$SCHEMATHESIS_PY" "$PYJWT_PY"
"$VENV/bin/schemathesis" --version

rm -rf "$WORK"
mkdir -p "$WORK"

# Fresh secrets on every run; nothing may depend on a known value.
random() { "$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(32))'; }
export CONTRACT_HS256_SECRET CONTRACT_API_KEY_SECRET CONTRACT_AUTH_TOKEN CONTRACT_WEBHOOK_SHARED_KEY
CONTRACT_HS256_SECRET=$(random)
CONTRACT_API_KEY_SECRET=$(random)
CONTRACT_AUTH_TOKEN=$(random)
CONTRACT_WEBHOOK_SHARED_KEY=$(random)

step "start tokenmint (tests/contract/contract.toml)"
SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
trap stop_server EXIT

# No TOKENMINT_* variable of the caller's environment may change the configuration.
mapfile -t unset_tokenmint < <(compgen -e | grep '^TOKENMINT' | sed 's/^/--unset=/' || true)
env "${unset_tokenmint[@]}" "$BIN" check-config --config "$CONFIG" >/dev/null
env "${unset_tokenmint[@]}" "$BIN" serve --config "$CONFIG" >"$WORK/tokenmint.log" 2>&1 &
SERVER_PID=$!
ADDRESS=
for _ in $(seq 100); do
    ADDRESS=$(grep -o '"message":"listening","address":"127\.0\.0\.1:[0-9]*"' "$WORK/tokenmint.log" |
        grep -o '127\.0\.0\.1:[0-9]*' | head -n 1 || true)
    [[ -n $ADDRESS ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $ADDRESS ]]; then
    echo "contract: tokenmint did not start; its log:"
    cat "$WORK/tokenmint.log"
    echo "contract: 0 passed, 1 failed"
    exit 1
fi
BASE_URL=http://$ADDRESS
ready=$("$VENV/bin/python" - "$BASE_URL" <<'EOF'
import sys, time, urllib.request
for _ in range(50):
    try:
        with urllib.request.urlopen(sys.argv[1] + "/readyz", timeout=2) as r:
            if r.status == 200:
                print("ready")
                break
    except Exception:
        time.sleep(0.1)
EOF
)
[[ $ready == ready ]] || { echo "contract: tokenmint at $BASE_URL is not ready"; exit 1; }
echo "tokenmint listening on $BASE_URL"

# The caller: an HS256 JWT from the configured identity provider, valid for an hour.
CALLER_TOKEN=$("$VENV/bin/python" - <<'EOF'
import os, time, jwt
now = int(time.time())
claims = {"iss": "https://idp.contract.test/", "aud": "tokenmint-contract",
          "sub": "contract_user", "iat": now, "exp": now + 3600}
print(jwt.encode(claims, os.environ["CONTRACT_HS256_SECRET"], algorithm="HS256"))
EOF
)

passed=0
failed=0
run_schemathesis() {
    local name=$1
    shift
    step "schemathesis: $name (-c all, --max-examples $MAX_EXAMPLES)"
    local seed=()
    [[ -n ${CONTRACT_SEED:-} ]] && seed=(--seed "$CONTRACT_SEED")
    local status=0
    # Run from target/contract so nothing schemathesis writes lands in the source tree.
    (cd "$WORK" && timeout --kill-after=10 "$RUN_TIMEOUT" \
        "$VENV/bin/schemathesis" --config-file "$ST_CONFIG" run "$ROOT/openapi.yaml" \
        --url "$BASE_URL" -c all --max-examples "$MAX_EXAMPLES" "${seed[@]}" \
        --no-color --report junit --report-junit-path "$WORK/junit-$name.xml" "$@") || status=$?
    if ((status == 124 || status == 137)); then
        echo "contract: the $name run exceeded ${RUN_TIMEOUT}s"
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "contract: tokenmint exited during the $name run"
        status=1
    fi
    if ((status == 0)); then
        passed=$((passed + 1))
        echo "contract: $name run passed"
    else
        failed=$((failed + 1))
        echo "contract: $name run FAILED (exit $status)"
    fi
}

run_schemathesis unauthenticated
run_schemathesis authenticated -H "Authorization: Bearer $CALLER_TOKEN"

step "server log"
stop_server
# A panic is a 500 the checks would have caught; no secret and no caller token may be logged.
if grep -q 'request handler panicked' "$WORK/tokenmint.log"; then
    echo "contract: tokenmint logged a panicking handler"
    failed=$((failed + 1))
fi
leaks=()
for name in CONTRACT_HS256_SECRET CONTRACT_API_KEY_SECRET CONTRACT_AUTH_TOKEN CONTRACT_WEBHOOK_SHARED_KEY; do
    grep -qF "${!name}" "$WORK/tokenmint.log" && leaks+=("$name")
done
grep -qF "${CALLER_TOKEN##*.}" "$WORK/tokenmint.log" && leaks+=("the caller token")
if ((${#leaks[@]})); then
    echo "contract: the server log contains ${leaks[*]}"
    failed=$((failed + 1))
fi
grep -o '"event":"token_[a-z]*"' "$WORK/tokenmint.log" | sort | uniq -c || true

echo "contract: $passed passed, $failed failed"
((failed == 0))

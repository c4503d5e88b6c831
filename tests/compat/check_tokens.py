#!/usr/bin/env python3
"""Compatibility check: tokens minted by tokenmint against Twilio's official Python library.

For each case this runs `tokenmint mint` with tests/compat/compat.toml, then
  * verifies the token with `twilio.jwt.Jwt.from_jwt(token, secret)` (signature, exp, nbf),
  * checks the header (alg, typ, cty, twr), iss, sub, jti, the claim set and exp - nbf == ttl,
  * builds the reference token with `twilio.jwt.access_token.AccessToken` and its grants for the
    same policy and requires `payload["grants"]` to equal the reference grants exactly.
It also checks that the policy refuses what it must, that `check-config` accepts the file without
printing secrets, and that `tokenmint decode --secret-env` accepts a fresh token and rejects a
tampered one.

Usage: python3 tests/compat/check_tokens.py [--bin target/release/tokenmint] [--verbose]
Needs `pip install twilio`. Exits 0 only when every check passes; the last line is the summary
`compat: N passed, M failed`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

try:
    from twilio.jwt import Jwt, JwtDecodeError
    from twilio.jwt.access_token import AccessToken, AccessTokenGrant
    from twilio.jwt.access_token.grants import (
        ChatGrant,
        SyncGrant,
        TaskRouterGrant,
        VideoGrant,
        VoiceGrant,
    )
except ImportError as error:
    print(f"compat: cannot import Twilio's Python library ({error}); run `pip install twilio`")
    print("compat: 0 passed, 1 failed")
    sys.exit(1)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CONFIG = HERE / "compat.toml"

# --- Values mirrored from compat.toml -------------------------------------------------------
# The main account SID reaches the config as env:COMPAT_ACCOUNT_SID.
MAIN_ACCOUNT_SID = "AC5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
MAIN_KEY_SID = "SKa1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"  # first signing key: signs
OLD_KEY_SID = "SKb2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"  # second signing key: rotation only
DUBLIN_ACCOUNT_SID = "AC1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e"
DUBLIN_KEY_SID = "SKd1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1"
DUBLIN_SECRET_FILE = "dublin-api-key.secret"  # relative: resolved against tokenmint's cwd

VOICE_APP_SID = "AP0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
VOICE_PUSH = {
    "ios": "CR0000000000000000000000000000c001",
    "ios_sandbox": "CR0000000000000000000000000000c002",
    "android": "CR0000000000000000000000000000c003",
}
CALLCENTER_APP_SID = "AP0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"
CALLCENTER_WORKSPACE = "WS0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c"
CALLCENTER_WORKER = "WK0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d"
CHAT_SERVICE = "IS0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e"
CHAT_ROLE = "RL0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"
CHAT_PUSH = {
    "ios": "CR0000000000000000000000000000c011",
    "android": "CR0000000000000000000000000000c013",
}
SYNC_SERVICE = "IS1010101010101010101010101010101a"
SUITE_VOICE_PUSH_IOS = "CR0000000000000000000000000000c021"
SUITE_CHAT_SERVICE = "IS2020202020202020202020202020202a"
SUITE_CHAT_PUSH_ANDROID = "CR0000000000000000000000000000c023"
SUITE_SYNC_SERVICE = "IS3030303030303030303030303030303a"
SUITE_WORKSPACE = "WS4040404040404040404040404040404a"
EU_CHAT_SERVICE = "IS5050505050505050505050505050505a"
# ---------------------------------------------------------------------------------------------

# Fresh secrets every run, so nothing can depend on a known value.
SECRETS = {
    "COMPAT_KEY_SECRET": "main-" + secrets.token_hex(24),
    "COMPAT_OLD_KEY_SECRET": "old-" + secrets.token_hex(24),
    "COMPAT_AUTH_TOKEN": secrets.token_hex(16),
    "COMPAT_GATEWAY_SECRET": "gw-" + secrets.token_hex(16),
}
DUBLIN_SECRET = "ie1-" + secrets.token_hex(24)


@dataclass(frozen=True)
class Account:
    account_sid: str
    key_sid: str
    secret: str
    region: str | None


MAIN = Account(MAIN_ACCOUNT_SID, MAIN_KEY_SID, SECRETS["COMPAT_KEY_SECRET"], None)
DUBLIN = Account(DUBLIN_ACCOUNT_SID, DUBLIN_KEY_SID, DUBLIN_SECRET, "ie1")

JTI_SUFFIX = re.compile(r"[0-9a-f]{32}")
PAYLOAD_CLAIMS = {"jti", "grants", "iss", "exp", "nbf", "sub"}
CLOCK_SLACK = 120  # seconds between tokenmint's clock reading and ours


@dataclass
class Case:
    """One `tokenmint mint` run and the token Twilio's library would build for it."""

    name: str
    app: str
    sub: str
    reference: Callable[[str], list[AccessTokenGrant]]  # identity -> grants
    ttl: int  # expected lifetime
    identity: str | None = None  # expected grants.identity; `sub` when None
    account: Account = MAIN
    grants: list[str] = field(default_factory=list)
    room: str | None = None
    ttl_arg: int | None = None
    platform: str | None = None
    device_id: str | None = None

    def args(self) -> list[str]:
        args = ["--app", self.app, "--identity", self.sub]
        for grant in self.grants:
            args += ["--grant", grant]
        for flag, value in [
            ("--room", self.room),
            ("--ttl", self.ttl_arg),
            ("--platform", self.platform),
            ("--device-id", self.device_id),
        ]:
            if value is not None:
                args += [flag, str(value)]
        return args

    @property
    def expected_identity(self) -> str:
        return self.identity if self.identity is not None else self.sub


def hashed(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


SUITE_IDENTITY = "user_" + hashed("auth0|5f3a")

CASES = [
    Case(
        "voice: incoming + outgoing with params",
        app="voice",
        sub="alice_01",
        ttl_arg=600,
        ttl=600,
        reference=lambda ident: [
            VoiceGrant(
                incoming_allow=True,
                outgoing_application_sid=VOICE_APP_SID,
                outgoing_application_params={"agent": ident, "queue": "support"},
            )
        ],
    ),
    Case(
        "voice: ios push credential + endpoint_id, default ttl",
        app="voice",
        sub="alice_01",
        platform="ios",
        device_id="iphone-15",
        ttl=3600,
        reference=lambda ident: [
            VoiceGrant(
                incoming_allow=True,
                outgoing_application_sid=VOICE_APP_SID,
                outgoing_application_params={"agent": ident, "queue": "support"},
                push_credential_sid=VOICE_PUSH["ios"],
                endpoint_id=f"voice:{ident}:iphone-15",
            )
        ],
    ),
    Case(
        "voice: ios_sandbox push credential",
        app="voice",
        sub="bob",
        platform="ios_sandbox",
        ttl=3600,
        reference=lambda ident: [
            VoiceGrant(
                incoming_allow=True,
                outgoing_application_sid=VOICE_APP_SID,
                outgoing_application_params={"agent": ident, "queue": "support"},
                push_credential_sid=VOICE_PUSH["ios_sandbox"],
            )
        ],
    ),
    Case(
        "voice: platform web gets no push credential",
        app="voice",
        sub="bob",
        platform="web",
        ttl=3600,
        reference=lambda ident: [
            VoiceGrant(
                incoming_allow=True,
                outgoing_application_sid=VOICE_APP_SID,
                outgoing_application_params={"agent": ident, "queue": "support"},
            )
        ],
    ),
    Case(
        "voice: ttl above max_ttl is clamped to 4h",
        app="voice",
        sub="carol",
        ttl_arg=86400,
        ttl=4 * 3600,
        reference=lambda ident: [
            VoiceGrant(
                incoming_allow=True,
                outgoing_application_sid=VOICE_APP_SID,
                outgoing_application_params={"agent": ident, "queue": "support"},
            )
        ],
    ),
    Case(
        "voice + task_router: outgoing without params, no incoming",
        app="callcenter",
        sub="agent_7",
        grants=["task_router", "voice"],
        ttl=1800,
        reference=lambda ident: [
            VoiceGrant(outgoing_application_sid=CALLCENTER_APP_SID),
            TaskRouterGrant(
                workspace_sid=CALLCENTER_WORKSPACE,
                worker_sid=CALLCENTER_WORKER,
                role="worker",
            ),
        ],
    ),
    Case(
        "task_router alone",
        app="callcenter",
        sub="agent_7",
        grants=["task_router"],
        ttl=1800,
        reference=lambda ident: [
            TaskRouterGrant(
                workspace_sid=CALLCENTER_WORKSPACE,
                worker_sid=CALLCENTER_WORKER,
                role="worker",
            )
        ],
    ),
    Case(
        "video: a specific room matching a pattern",
        app="video",
        sub="alice",
        grants=["video"],
        room="standup-2024-05-01",
        ttl=3600,
        reference=lambda ident: [VideoGrant(room="standup-2024-05-01")],
    ),
    Case(
        "video: the caller's own room from a claim pattern",
        app="video",
        sub="alice",
        room="user-alice",
        ttl=3600,
        reference=lambda ident: [VideoGrant(room="user-alice")],
    ),
    Case(
        "video: policy picks the only room",
        app="video_mine",
        sub="dave",
        ttl=3600,
        reference=lambda ident: [VideoGrant(room="user-dave")],
    ),
    Case(
        "video: any room (no room field)",
        app="video_any",
        sub="alice",
        ttl=3600,
        reference=lambda ident: [VideoGrant()],
    ),
    Case(
        "video: any-room policy with a named room",
        app="video_any",
        sub="alice",
        grants=["video"],
        room="Team Sync",
        ttl=3600,
        reference=lambda ident: [VideoGrant(room="Team Sync")],
    ),
    Case(
        "chat: ios push credential, endpoint_id, deployment role",
        app="chat",
        sub="alice@example.com",
        platform="ios",
        device_id="iphone-15",
        ttl=7200,
        reference=lambda ident: [
            ChatGrant(
                service_sid=CHAT_SERVICE,
                endpoint_id=f"chat:{ident}:iphone-15",
                deployment_role_sid=CHAT_ROLE,
                push_credential_sid=CHAT_PUSH["ios"],
            )
        ],
    ),
    Case(
        "chat: 24h ttl, no device",
        app="chat",
        sub="alice@example.com",
        ttl_arg=86400,
        ttl=86400,
        reference=lambda ident: [
            ChatGrant(service_sid=CHAT_SERVICE, deployment_role_sid=CHAT_ROLE)
        ],
    ),
    Case(
        "sync: endpoint_id from device id",
        app="sync",
        sub="alice",
        device_id="laptop",
        ttl=3600,
        reference=lambda ident: [
            SyncGrant(service_sid=SYNC_SERVICE, endpoint_id=f"sync:{ident}:laptop")
        ],
    ),
    Case(
        "suite: every grant, hashed identity, android push only where configured",
        app="suite",
        sub="auth0|5f3a",
        identity=SUITE_IDENTITY,
        platform="android",
        device_id="pixel-8",
        ttl=3600,
        reference=lambda ident: [
            VoiceGrant(incoming_allow=True, endpoint_id=f"suite:{ident}:pixel-8"),
            VideoGrant(),
            ChatGrant(
                service_sid=SUITE_CHAT_SERVICE,
                endpoint_id=f"suite:{ident}:pixel-8",
                push_credential_sid=SUITE_CHAT_PUSH_ANDROID,
            ),
            SyncGrant(
                service_sid=SUITE_SYNC_SERVICE, endpoint_id=f"suite:{ident}:pixel-8"
            ),
            TaskRouterGrant(workspace_sid=SUITE_WORKSPACE, role="supervisor"),
        ],
    ),
    Case(
        "suite: requested subset chat + sync, ios push only on voice",
        app="suite",
        sub="auth0|5f3a",
        identity=SUITE_IDENTITY,
        grants=["chat", "sync"],
        platform="ios",
        ttl=3600,
        reference=lambda ident: [
            ChatGrant(service_sid=SUITE_CHAT_SERVICE),
            SyncGrant(service_sid=SUITE_SYNC_SERVICE),
        ],
    ),
    Case(
        "ie1 region: twr header, key secret from file:",
        app="eu",
        sub="alice",
        account=DUBLIN,
        ttl=3600,
        reference=lambda ident: [VideoGrant(), ChatGrant(service_sid=EU_CHAT_SERVICE)],
    ),
]

# Requests the policy must refuse: (name, app, identity, extra mint arguments).
REFUSALS = [
    ("video room matching no pattern", "video", "alice", ["--room", "user-bob"]),
    ("video grant without a room the policy can pick", "video", "alice", ["--grant", "video"]),
    ("push platform with no credential", "voice", "alice", ["--platform", "blackberry"]),
    ("grant the app does not offer", "voice", "alice", ["--grant", "chat"]),
    ("voice identity with invalid characters", "voice", "alice@example.com", []),
    ("ttl of zero", "voice", "alice", ["--ttl", "0"]),
    ("deprecated grant name", "voice", "alice", ["--grant", "ip_messaging"]),
    ("unknown app", "nope", "alice", []),
]


class Runner:
    def __init__(self, binary: Path, config: Path, workdir: Path):
        self.binary = binary
        self.config = config
        self.workdir = workdir
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENMINT")}
        env.pop("RUST_LOG", None)
        env.update(SECRETS)
        env["COMPAT_ACCOUNT_SID"] = MAIN_ACCOUNT_SID
        self.env = env
        (workdir / DUBLIN_SECRET_FILE).write_text(DUBLIN_SECRET + "\n")

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.binary), *args],
            cwd=self.workdir,
            env=env if env is not None else self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def mint(self, args: list[str]) -> subprocess.CompletedProcess:
        return self.run("mint", "--config", str(self.config), *args)


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def record(self, name: str, problems: list[str]) -> None:
        if problems:
            self.failed.append(name)
            print(f"FAIL {name}")
            for problem in problems:
                for line in problem.splitlines():
                    print(f"       {line}")
        else:
            self.passed += 1
            print(f"ok   {name}")

    def check(self, name: str, test: Callable[[], list[str]]) -> None:
        try:
            problems = test()
        except Exception as error:  # a crash in a check is a failure, not an abort
            problems = [f"check raised {type(error).__name__}: {error}"]
        self.record(name, problems)


def describe(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\nstdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def verify_token(token: str, case: Case, now: int) -> list[str]:
    account = case.account
    problems: list[str] = []
    if not account.secret:
        return ["refusing to verify with an empty secret (it would skip the signature check)"]
    try:
        decoded = Jwt.from_jwt(token, account.secret)
    except JwtDecodeError as error:
        return [f"twilio.jwt.Jwt.from_jwt rejected the token: {error}"]
    headers, payload = decoded.headers, decoded.payload

    identity = case.expected_identity
    reference = AccessToken(
        account.account_sid,
        account.key_sid,
        account.secret,
        grants=case.reference(identity),
        identity=identity,
        ttl=case.ttl,
        region=account.region,
    )

    # Header.
    expected_headers = {"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"}
    if account.region:
        expected_headers["twr"] = account.region
    if headers != expected_headers:
        problems.append(f"header {canonical(headers)}\n  expected {canonical(expected_headers)}")
    if headers != reference.headers:
        problems.append(f"header differs from AccessToken's {canonical(reference.headers)}")

    # Claims.
    if set(payload) != PAYLOAD_CLAIMS or set(payload) != set(reference.payload):
        problems.append(f"claims {sorted(payload)}, expected {sorted(PAYLOAD_CLAIMS)}")
    if payload.get("iss") != account.key_sid:
        problems.append(f"iss {payload.get('iss')!r}, expected {account.key_sid!r}")
    if payload.get("sub") != account.account_sid:
        problems.append(f"sub {payload.get('sub')!r}, expected {account.account_sid!r}")
    exp, nbf = payload.get("exp"), payload.get("nbf")
    if not (type(exp) is int and type(nbf) is int):
        problems.append(f"exp {exp!r} and nbf {nbf!r} must be JSON integers")
    else:
        if exp - nbf != case.ttl:
            problems.append(f"exp - nbf = {exp - nbf}, expected ttl {case.ttl}")
        if abs(nbf - now) > CLOCK_SLACK:
            problems.append(f"nbf {nbf} is not now ({now})")
    jti = payload.get("jti")
    prefix = account.key_sid + "-"
    suffix = jti[len(prefix):] if isinstance(jti, str) and jti.startswith(prefix) else ""
    if not JTI_SUFFIX.fullmatch(suffix):
        problems.append(f"jti {jti!r} is not {prefix}<32 lowercase hex>")

    # Grants: exactly what Twilio's library builds for the same policy.
    expected_grants = reference.payload["grants"]
    if payload.get("grants") != expected_grants:
        problems.append(
            f"grants differ from the reference library's\n"
            f"  tokenmint: {canonical(payload.get('grants'))}\n"
            f"  reference: {canonical(expected_grants)}"
        )

    # The signature really was checked: another key's secret must fail.
    try:
        Jwt.from_jwt(token, "not-" + account.secret)
        problems.append("token also verifies with a wrong secret")
    except JwtDecodeError:
        pass
    return problems


def flip_signature_char(token: str) -> str:
    header, payload, signature = token.split(".")
    i = len(signature) // 2
    replacement = "A" if signature[i] != "A" else "B"
    return ".".join([header, payload, signature[:i] + replacement + signature[i + 1:]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bin",
        type=Path,
        default=Path(os.environ.get("TOKENMINT_BIN", REPO / "target/release/tokenmint")),
        help="tokenmint binary (default: target/release/tokenmint, or $TOKENMINT_BIN)",
    )
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--verbose", "-v", action="store_true", help="show tokenmint's stderr")
    options = parser.parse_args()

    binary = options.bin.resolve()
    if not os.access(binary, os.X_OK):
        print(f"compat: {binary} is not an executable; run `cargo build --release` first")
        print("compat: 0 passed, 1 failed")
        return 1

    report = Report()
    minted: dict[str, str] = {}  # case name -> token
    with tempfile.TemporaryDirectory(prefix="tokenmint-compat-") as tmp:
        runner = Runner(binary, options.config.resolve(), Path(tmp))

        def check_config() -> list[str]:
            proc = runner.run("check-config", "--config", str(runner.config))
            if proc.returncode != 0:
                return [f"check-config failed: {describe(proc)}"]
            out = proc.stdout + proc.stderr
            leaked = [name for name, value in SECRETS.items() if value in out]
            leaked += ["dublin secret"] if DUBLIN_SECRET in out else []
            return [f"check-config output contains {', '.join(leaked)}"] if leaked else []

        def check_config_missing_secret() -> list[str]:
            env = dict(runner.env)
            del env["COMPAT_KEY_SECRET"]
            proc = runner.run("check-config", "--config", str(runner.config), env=env)
            if proc.returncode != 2 or "COMPAT_KEY_SECRET" not in proc.stdout + proc.stderr:
                return [f"expected exit 2 naming COMPAT_KEY_SECRET: {describe(proc)}"]
            return []

        report.check("check-config accepts compat.toml and prints no secret", check_config)
        report.check(
            "check-config exits 2 when a referenced variable is unset",
            check_config_missing_secret,
        )

        for case in CASES:
            def mint_case(case: Case = case) -> list[str]:
                now = int(time.time())
                proc = runner.mint(case.args())
                if options.verbose and proc.stderr.strip():
                    print(proc.stderr.rstrip())
                if proc.returncode != 0:
                    return [f"tokenmint mint {' '.join(case.args())}: {describe(proc)}"]
                lines = proc.stdout.split()
                if len(lines) != 1 or lines[0].count(".") != 2:
                    return [f"stdout is not one compact JWS: {proc.stdout!r}"]
                token = lines[0]
                minted[case.name] = token
                problems = verify_token(token, case, now)
                signature = token.rsplit(".", 1)[1]
                if signature in proc.stderr or case.account.secret in proc.stderr:
                    problems.append("the token or the key secret appears in tokenmint's log")
                return problems

            report.check(f"mint {case.name}", mint_case)

        def unique_jtis() -> list[str]:
            secret_of = {c.name: c.account.secret for c in CASES}
            jtis = [Jwt.from_jwt(t, secret_of[n]).payload["jti"] for n, t in minted.items()]
            return [] if len(set(jtis)) == len(jtis) else ["two tokens share a jti"]

        report.check("every token has its own jti", unique_jtis)

        for name, app, sub, extra in REFUSALS:
            args = ["--app", app, "--identity", sub, *extra]

            def refusal(args: list[str] = args) -> list[str]:
                proc = runner.mint(args)
                if proc.returncode == 0 or "." in proc.stdout.strip():
                    return [f"expected a refusal and no token: {describe(proc)}"]
                return []

            report.check(f"refuse {name}", refusal)

        # `tokenmint decode`.
        voice_token = minted.get(CASES[0].name)
        eu_token = minted.get(CASES[-1].name)

        def decode(
            token: str | None,
            secret_env: str,
            want_ok: bool,
            extra_env: dict[str, str] | None = None,
        ) -> list[str]:
            if token is None:
                return ["no token to decode (its mint case failed)"]
            env = dict(runner.env, **(extra_env or {}))
            proc = runner.run("decode", token, "--secret-env", secret_env, env=env)
            if (proc.returncode == 0) != want_ok:
                return [f"expected {'success' if want_ok else 'failure'}: {describe(proc)}"]
            return []

        def decode_tampered() -> list[str]:
            if voice_token is None:
                return ["no token to tamper with (its mint case failed)"]
            tampered = flip_signature_char(voice_token)
            problems = decode(tampered, "COMPAT_KEY_SECRET", want_ok=False)
            try:
                Jwt.from_jwt(tampered, MAIN.secret)
                problems.append("twilio.jwt.Jwt.from_jwt accepted the tampered token")
            except JwtDecodeError:
                pass
            return problems

        report.check(
            "decode --secret-env accepts a fresh token",
            lambda: decode(voice_token, "COMPAT_KEY_SECRET", True),
        )
        report.check("decode --secret-env rejects a flipped signature character", decode_tampered)
        report.check(
            "decode --secret-env rejects the rotated-out key's secret",
            lambda: decode(voice_token, "COMPAT_OLD_KEY_SECRET", False),
        )
        report.check(
            "decode --secret-env accepts an ie1 token",
            lambda: decode(
                eu_token, "COMPAT_DUBLIN_SECRET", True, {"COMPAT_DUBLIN_SECRET": DUBLIN_SECRET}
            ),
        )

    print(f"compat: {report.passed} passed, {len(report.failed)} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())

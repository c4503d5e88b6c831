#!/usr/bin/env python3
"""Checks one Twilio Access Token minted by tokenmint with Twilio's official Python library.

Called by tests/oidc/oidc.test.mjs once per minted token, the same way tests/compat/ checks
tokens: `twilio.jwt.Jwt.from_jwt(token, secret)` verifies the HS256 signature, `exp` and `nbf`;
the header and claims are compared with what `twilio.jwt.access_token.AccessToken` builds for the
same policy (tests/oidc/tokenmint.toml, app `web`), grants included, exactly.

Input: one JSON object on stdin: {"token", "identity", "ttl", "grants": [names]}; the API Key
secret comes from the environment variable OIDC_TWILIO_KEY_SECRET (never an argument, so it is
not visible in the process list). Output: `ok`, or one problem per line; exit 0 only when ok.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

from twilio.jwt import Jwt, JwtDecodeError
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant, VideoGrant, VoiceGrant

# Mirrored from tests/oidc/tokenmint.toml: change both together.
ACCOUNT_SID = "AC0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e"
KEY_SID = "SK0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e"
CHAT_SERVICE_SID = "IS0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e01"
CLOCK_SLACK = 120


def reference_grants(names: list[str]) -> list:
    grants = []
    for name in names:
        if name == "voice":
            grants.append(VoiceGrant(incoming_allow=True))
        elif name == "video":
            grants.append(VideoGrant())  # rooms = ["*"]: a token for every room
        elif name == "chat":
            grants.append(ChatGrant(service_sid=CHAT_SERVICE_SID))
        else:
            raise SystemExit(f"unexpected grant {name!r}")
    return grants


def check(token: str, identity: str, ttl: int, names: list[str], secret: str) -> list[str]:
    if not secret:
        return ["refusing to verify with an empty secret (it would skip the signature check)"]
    now = int(time.time())
    try:
        decoded = Jwt.from_jwt(token, secret)
    except JwtDecodeError as error:
        return [f"twilio.jwt.Jwt.from_jwt rejected the token: {error}"]
    headers, payload = decoded.headers, decoded.payload
    reference = AccessToken(
        ACCOUNT_SID, KEY_SID, secret, grants=reference_grants(names), identity=identity, ttl=ttl
    )
    problems = []
    if headers != reference.headers:
        problems.append(f"header {headers}, AccessToken builds {reference.headers}")
    if set(payload) != set(reference.payload):
        problems.append(f"claims {sorted(payload)}, AccessToken builds {sorted(reference.payload)}")
    if payload.get("iss") != KEY_SID or payload.get("sub") != ACCOUNT_SID:
        problems.append(f"iss/sub {payload.get('iss')!r}/{payload.get('sub')!r}")
    exp, nbf = payload.get("exp"), payload.get("nbf")
    if not (type(exp) is int and type(nbf) is int) or exp - nbf != ttl or abs(nbf - now) > CLOCK_SLACK:
        problems.append(f"exp {exp!r} / nbf {nbf!r}: expected a lifetime of {ttl}s from now")
    if not re.fullmatch(re.escape(KEY_SID) + "-[0-9a-f]{32}", str(payload.get("jti"))):
        problems.append(f"jti {payload.get('jti')!r}")
    if payload.get("grants") != reference.payload["grants"]:
        problems.append(
            f"grants {json.dumps(payload.get('grants'), sort_keys=True)}\n"
            f"  reference {json.dumps(reference.payload['grants'], sort_keys=True)}"
        )
    try:
        Jwt.from_jwt(token, "not-" + secret)
        problems.append("the token also verifies with a wrong secret")
    except JwtDecodeError:
        pass
    return problems


def main() -> int:
    request = json.load(sys.stdin)
    problems = check(
        request["token"],
        request["identity"],
        int(request["ttl"]),
        list(request["grants"]),
        os.environ.get("OIDC_TWILIO_KEY_SECRET", ""),
    )
    print("\n".join(problems) if problems else "ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

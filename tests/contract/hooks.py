"""Schemathesis hooks for the contract test (.ci/contract.sh, see README.md here).

schemathesis.toml lets `positive_data_acceptance` accept 400 on the token operations, because a
schema-valid token request can still be refused by a documented rule the spec cannot express.
This check takes that allowance back for everything else: a schema-valid request that gets 400
fails the run unless the problem document names one of those rules AND the request really is in
the situation the rule is about. So a 400 `invalid_request` for any other reason (a spec that
allows what the server never accepts) is still a failure.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

TOKEN_PATHS = {"/token", "/apps/{app}/token"}
# The push platforms tests/contract/contract.toml configures (grants.voice/chat.push_credentials),
# plus `web`, which means "no push credential" for every app.
CONFIGURED_PLATFORMS = {"ios", "ios_sandbox", "android", "web"}
MAX_ROOM_BYTES = 128


def _fields(case: Any) -> dict[str, Any]:
    """The mint request fields of a case: the query for GET, the JSON body for POST."""
    if case.method.upper() == "GET":
        return dict(case.query or {})
    body = case.body
    return dict(body) if isinstance(body, dict) else {}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    # The query form also takes comma-separated names.
    return [name for item in items for name in str(item).split(",")]


def _documented_refusal(case: Any, code: str, detail: str) -> str | None:
    """Why a 400 for this schema-valid case is a documented refusal, or None if it is not."""
    fields = _fields(case)
    platform = fields.get("platform")
    room = fields.get("room")
    grants = fields.get("grants")
    if code == "unknown_platform":
        # Push platforms are per-app configuration keys: the spec cannot enumerate them.
        if platform is not None and platform not in CONFIGURED_PLATFORMS:
            return f"platform {platform!r} has no push credential in this configuration"
        return None
    if code != "invalid_request":
        return None
    if detail == "room given without the video grant":
        # A constraint between two query parameters, which OpenAPI cannot express (the JSON body
        # schema does express it, so a schema-valid POST never gets here).
        if case.method.upper() == "GET" and room is not None and grants is not None:
            if "video" not in [g.strip() for g in _as_list(grants)]:
                return "room without video in an explicit grant list (query)"
        return None
    if detail == "room must be 1 to 128 bytes":
        # maxLength counts characters; the limit is in bytes (documented on the Room schema).
        if isinstance(room, str) and len(room) <= MAX_ROOM_BYTES < len(room.encode("utf-8")):
            return f"room of {len(room)} characters is {len(room.encode('utf-8'))} bytes"
        return None
    return None


@schemathesis.check
def policy_refusals_only(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schema-valid token request refused with 400 must be a documented, explained refusal."""
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if case.operation.path not in TOKEN_PATHS or response.status_code != 400:
        return None
    try:
        problem = json.loads(response.content)
    except ValueError:
        raise AssertionError("a 400 answer that is not a problem document") from None
    code = str(problem.get("code"))
    detail = str(problem.get("detail"))
    if _documented_refusal(case, code, detail) is None:
        raise AssertionError(
            f"Schema-valid request refused with 400 {code}: {detail!r}, which is not one of the "
            "documented refusals the spec cannot express (tests/contract/README.md)"
        )
    return None

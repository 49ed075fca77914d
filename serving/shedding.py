"""Refusing triage at once under overload, before routing, validation or the body is read.

Past its capacity most requests the service receives are refused, so the cost of a refusal is
taken from the claims it does answer. This pure ASGI layer answers those refusals with 503 and
Retry-After from the request line alone; what it lets through still meets the lanes' own
admission check, which stays the rule.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from schemas.auth import Role
from serving.auth import KEY_STATE

TRIAGE_PATHS = frozenset({"/v1/triage", "/v1/triage/batch"})
REFUSAL = json.dumps({"detail": "overloaded: no room for another claim; retry later"}).encode()


class OverloadShedding:
    """503 for a triage request while the inference lanes would refuse even one claim.

    Placed after the key gate, so an anonymous request is still 401, and a key whose role may
    not triage still gets its 403 from the route. The connection is kept alive: a triage body
    is small and has arrived with its headers, and a client told to retry later should not pay
    for a new connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in TRIAGE_PATHS
            and _may_triage(scope)
            and (lanes := getattr(scope["app"].state, "inference", None)) is not None
            and lanes.full
        ):
            lanes.shed("queue_full")
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(REFUSAL)).encode()),
                        (b"retry-after", str(lanes.retry_after()).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": REFUSAL})
            return
        await self.app(scope, receive, send)


def _may_triage(scope: Scope) -> bool:
    """Whether the key the gate let in may triage (with keys off, anyone may)."""
    info = scope.get("state", {}).get(KEY_STATE)
    return info is None or info.role.allows(Role.triage)

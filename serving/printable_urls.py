"""Refusing control characters in a request's path and query string, ahead of every route.

Path and query parameters name claims, predictions, tasks and adjusters, and most reach the
database: a NUL there fails the query on PostgreSQL (a 500), and any control character would hide
in logs. One rule at the edge covers every route, the console's and those still to come.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from schemas.claim import printable
from serving.responses import AsciiJSONResponse


class PrintableURLs:
    """422 naming the parameter when the path or a query parameter holds a control character."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        errors = control_characters(scope["path"], scope.get("query_string", b""))
        if errors:
            await AsciiJSONResponse(status_code=422, content={"detail": errors})(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


def control_characters(path: str, query_string: bytes) -> list[dict[str, object]]:
    """FastAPI-shaped validation errors, one per path or query parameter that is not printable."""
    parts: list[tuple[list[str], str]] = [(["path"], path)]
    for name, value in parse_qsl(
        query_string.decode("utf-8", "replace"), keep_blank_values=True, errors="replace"
    ):
        parts += [(["query", name], name), (["query", name], value)]
    errors: list[dict[str, object]] = []
    for location, text in parts:
        try:
            printable(text)
        except ValueError as error:
            errors.append({"type": "control_character", "loc": location, "msg": str(error)})
    return errors

"""The error answers every route documents, so clients (and schemathesis) know them all."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel


class Problem(BaseModel):
    detail: str


class ValidationProblem(BaseModel):
    detail: list[dict[str, Any]]


_MEANINGS = {
    401: "No API key, or one that is not valid or was revoked.",
    403: "The key's role does not allow this route.",
    404: "No such job or model version.",
    409: "Not possible in the current state; the detail says why.",
    410: "The job's files were deleted when their retention ran out.",
    413: "The request body is larger than the service accepts.",
    422: "The request is not valid; each error names its field.",
    429: "The key's rate limit, or a cap on jobs at once, is reached; see Retry-After.",
    503: "Overloaded: more claims wait than the service answers in time; see Retry-After.",
    504: "The model did not answer within the inference timeout.",
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {
            "model": ValidationProblem if code == 422 else Problem,
            "description": _MEANINGS[code],
        }
        for code in codes
    }


SECURED = documented(401, 403, 429)


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: whatever a request held (a lone surrogate,
    "\\ud800", has no UTF-8 form) can be echoed back without failing to encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


def invalid_field(field: Sequence[str | int], message: str) -> HTTPException:
    """The 422 of a value that passed the request's schema but that the service cannot use,
    naming its field as FastAPI's own 422 does."""
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": ["body", *field], "msg": message, "type": "value_error"}],
    )


async def unprocessable(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, each error naming its field, rendered so that it cannot itself fail. A
    lone surrogate is named where it is (pydantic names no field for one in a key)."""
    errors = jsonable_encoder(error.errors())
    if any(item.get("type") == "string_unicode" for item in errors):
        errors = [item for item in errors if item.get("type") != "string_unicode"] + [
            {
                "type": "string_unicode",
                "loc": ["body", *path],
                "msg": "holds a lone surrogate, which no UTF-8 text can: send valid Unicode",
            }
            for path in lone_surrogates(error.body)
        ]
    return AsciiJSONResponse(status_code=422, content={"detail": errors})


def lone_surrogates(body: Any) -> list[list[str | int]]:
    """The paths in a parsed JSON body of the strings, and keys, that hold a lone surrogate;
    walked without recursion, however deep the body nests."""
    found: list[list[str | int]] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str) and not _encodable(value):
            found.append(list(path))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and not _encodable(key):
                    found.append([*path, key])
                else:
                    stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack += [((*path, index), item) for index, item in enumerate(value)]
    return sorted(found, key=str)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

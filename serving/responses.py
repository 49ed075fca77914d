"""The error answers every route documents, so clients (and schemathesis) know them all."""

from __future__ import annotations

from typing import Any

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

"""Triage of new claims, one at a time or in batches of up to 256; every answer is recorded,
so feedback can name it by its prediction_id.

Under overload a request is refused at once with 503 and Retry-After (serving/shedding.py before
it is routed, serving/batching.py when its claims do not fit);
one whose client disconnects while it waits is dropped before its forward pass."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import APIRouter, HTTPException, Request, Response, status

from schemas.claim import Claim
from schemas.triage import BatchTriageRequest, BatchTriageResponse, TriageResult
from serving.auth import Triage, charge_claims
from serving.batching import Overloaded
from serving.responses import SECURED, documented

T = TypeVar("T")
CLIENT_GONE = 499  # nginx's "client closed request": counted, never seen by the client


def _unavailable(error: Overloaded) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=str(error),
        headers={"Retry-After": str(error.retry_after)},
    )


router = APIRouter(
    prefix="/v1",
    tags=["triage"],
    dependencies=[Triage],
    responses=SECURED | documented(413, 503, 504),
)


def _json(answer: TriageResult | BatchTriageResponse) -> Response:
    """Our own models, serialised once: FastAPI would validate them again on the hot path."""
    return Response(answer.model_dump_json(), media_type="application/json")


async def _while_connected(request: Request, work: Awaitable[T]) -> T | Response:
    """`work`'s result; if the client disconnects first, `work` is cancelled (its claims are
    dropped before their pass, or not recorded) and a 499 is logged in place of an answer."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:  # the body is read: what comes next is the client leaving
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gone = True
                task.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        return Response(status_code=CLIENT_GONE)
    except Overloaded as error:
        raise _unavailable(error) from None
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


@router.post("/triage", response_model=TriageResult)
async def triage_claim(claim: Claim, request: Request) -> Response:
    """Shares a forward pass with the claims that arrive with it, when micro-batching is on."""
    batcher = request.app.state.batcher
    if batcher is not None:
        answer = await _while_connected(request, batcher.triage(claim))
    else:
        answer = await _while_connected(request, request.app.state.inference([claim]))
        answer = answer if isinstance(answer, Response) else answer[0]
    return answer if isinstance(answer, Response) else _json(answer)


@router.post("/triage/batch", response_model=BatchTriageResponse)
async def triage_batch(batch: BatchTriageRequest, request: Request) -> Response:
    charge_claims(request, len(batch.claims))  # the rate counts claims, not requests
    results = await _while_connected(request, request.app.state.inference(batch.claims))
    if isinstance(results, Response):
        return results
    return _json(BatchTriageResponse(results=results))

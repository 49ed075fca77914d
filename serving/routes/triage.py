"""Triage of new claims, one at a time or in batches of up to 256; every answer is recorded,
so feedback can name it by its prediction_id."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from schemas.claim import Claim
from schemas.triage import BatchTriageRequest, BatchTriageResponse, TriageResult
from serving.auth import Triage, charge_claims
from serving.responses import SECURED, documented

router = APIRouter(
    prefix="/v1",
    tags=["triage"],
    dependencies=[Triage],
    responses=SECURED | documented(413, 504),
)


def _json(answer: TriageResult | BatchTriageResponse) -> Response:
    """Our own models, serialised once: FastAPI would validate them again on the hot path."""
    return Response(answer.model_dump_json(), media_type="application/json")


@router.post("/triage", response_model=TriageResult)
async def triage_claim(claim: Claim, request: Request) -> Response:
    """Shares a forward pass with the claims that arrive with it, when micro-batching is on."""
    batcher = request.app.state.batcher
    if batcher is not None:
        return _json(await batcher.triage(claim))
    return _json((await request.app.state.inference([claim]))[0])


@router.post("/triage/batch", response_model=BatchTriageResponse)
async def triage_batch(batch: BatchTriageRequest, request: Request) -> Response:
    charge_claims(request, len(batch.claims))  # the rate counts claims, not requests
    return _json(BatchTriageResponse(results=await request.app.state.inference(batch.claims)))

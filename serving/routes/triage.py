"""Triage of new claims, one at a time or in batches of up to 256."""

from __future__ import annotations

from fastapi import APIRouter, Request

from schemas.claim import Claim
from schemas.triage import BatchTriageRequest, BatchTriageResponse, TriageResult
from serving.routes.status import model_service

router = APIRouter(prefix="/v1", tags=["triage"])


@router.post("/triage", response_model=TriageResult)
def triage_claim(claim: Claim, request: Request) -> TriageResult:
    return model_service(request).triage([claim])[0]


@router.post("/triage/batch", response_model=BatchTriageResponse)
def triage_batch(batch: BatchTriageRequest, request: Request) -> BatchTriageResponse:
    return BatchTriageResponse(results=model_service(request).triage(batch.claims))

"""Triage of new claims, one at a time or in batches of up to 256; every answer is recorded,
so feedback can name it by its prediction_id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from fastapi import APIRouter

from claims.store import Store
from schemas.claim import Claim
from schemas.feedback import PredictionRecord
from schemas.triage import BatchTriageRequest, BatchTriageResponse, TriageResult
from serving.dependencies import Models, StoreDep

router = APIRouter(prefix="/v1", tags=["triage"])


def _record(store: Store, claims: Sequence[Claim], results: list[TriageResult]) -> None:
    now = datetime.now(UTC)
    store.record_predictions(
        [
            PredictionRecord(
                prediction_id=result.prediction_id,
                claim=claim,
                result=result,
                model_version=result.served_by.model_version,
                source=result.served_by.source,
                created_at=now,
            )
            for claim, result in zip(claims, results, strict=True)
        ]
    )


@router.post("/triage", response_model=TriageResult)
def triage_claim(claim: Claim, models: Models, store: StoreDep) -> TriageResult:
    results = models.triage([claim])
    _record(store, [claim], results)
    return results[0]


@router.post("/triage/batch", response_model=BatchTriageResponse)
def triage_batch(batch: BatchTriageRequest, models: Models, store: StoreDep) -> BatchTriageResponse:
    results = models.triage(batch.claims)
    _record(store, batch.claims, results)
    return BatchTriageResponse(results=results)

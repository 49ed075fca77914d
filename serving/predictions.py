"""One forward pass, answered, counted and recorded: every triage answer is kept in the store
so that feedback can name it by its prediction_id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from claims.store import Store
from schemas.claim import Claim
from schemas.feedback import PredictionRecord
from schemas.triage import TriageResult
from serving.models import ModelService
from serving.observability import ServiceMetrics


def triage_and_record(
    models: ModelService, store: Store, metrics: ServiceMetrics, claims: Sequence[Claim]
) -> list[TriageResult]:
    results = models.triage(claims)
    metrics.observe_results(results)
    now = datetime.now(UTC)
    store.record_predictions(  # one transaction for the whole batch
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
    return results

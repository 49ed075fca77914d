"""Every triage answer is counted and kept in the store, so that feedback can name it by its
prediction_id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from claims.store import Store
from schemas.claim import Claim
from schemas.feedback import PredictionRecord
from schemas.triage import TriageResult
from serving.observability import ServiceMetrics


def record(
    store: Store, metrics: ServiceMetrics, claims: Sequence[Claim], results: list[TriageResult]
) -> None:
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
    metrics.observe_results(results)  # once recorded: a failed batch is retried claim by claim

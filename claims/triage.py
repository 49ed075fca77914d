"""From claims to triage results: predictions, the policy's decision, and who served them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from claims.decision import decide
from claims.predictor import Predictor
from schemas.claim import Claim
from schemas.policy import DecisionPolicy
from schemas.triage import LabelProbability, ServedBy, TaskPrediction, TriageResult

ALTERNATIVES = 3


def task_prediction(labels: Sequence[str], probabilities: np.ndarray) -> TaskPrediction:
    order = np.argsort(-probabilities, kind="stable")
    ranked = [LabelProbability(label=labels[i], probability=float(probabilities[i])) for i in order]
    return TaskPrediction(
        label=ranked[0].label,
        probability=ranked[0].probability,
        probabilities={labels[i]: float(p) for i, p in enumerate(probabilities)},
        alternatives=ranked[1 : 1 + ALTERNATIVES],
    )


def triage(
    claims: Sequence[Claim],
    predictor: Predictor,
    policy: DecisionPolicy,
    fallback_reason: str | None = None,
) -> list[TriageResult]:
    probabilities = predictor.predict_proba(claims)
    served_by = ServedBy(
        source=predictor.source,
        model_version=predictor.model_version,
        fallback_reason=fallback_reason,
    )
    results = []
    for row, claim in enumerate(claims):
        predictions = {
            task: task_prediction(predictor.labels[task], values[row])
            for task, values in probabilities.items()
        }
        results.append(
            TriageResult(
                claim_id=claim.claim_id,
                predictions=predictions,
                decision=decide(claim, predictions, policy, fallback_reason),
                served_by=served_by,
            )
        )
    return results

"""From claims to triage results: predictions, the policy's decision, and who served them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np

from claims.domain.decision import Probabilities, decide_all, policy_fields
from claims.model.predictor import Predictor
from schemas.claim import Claim
from schemas.policy import DecisionPolicy
from schemas.triage import LabelProbability, ServedBy, TaskPrediction, TriageResult

ALTERNATIVES = 3


def task_prediction(
    labels: Sequence[str], probabilities: np.ndarray, chosen: int | None = None
) -> TaskPrediction:
    """`chosen` is the predictor's decision; the alternatives follow, likeliest first."""
    chosen = int(probabilities.argmax()) if chosen is None else int(chosen)
    order = [i for i in np.argsort(-probabilities, kind="stable") if i != chosen]
    return TaskPrediction(
        label=labels[chosen],
        probability=float(probabilities[chosen]),
        probabilities={labels[i]: float(p) for i, p in enumerate(probabilities)},
        alternatives=[
            LabelProbability(label=labels[i], probability=float(probabilities[i]))
            for i in order[:ALTERNATIVES]
        ],
    )


def chosen_labels(predictor: Predictor, probabilities: Probabilities) -> dict[str, np.ndarray]:
    """Each claim's predicted label index per task, as the predictor decides it."""
    return {task: predictor.decide(task, values) for task, values in probabilities.items()}


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
    chosen = chosen_labels(predictor, probabilities)
    fields = policy_fields(claims, policy)
    decisions = decide_all(fields, probabilities, chosen, predictor.labels, policy, fallback_reason)
    return [
        TriageResult(
            prediction_id=f"pr-{uuid.uuid4().hex}",
            claim_id=claim.claim_id,
            predictions={
                task: task_prediction(predictor.labels[task], values[row], chosen[task][row])
                for task, values in probabilities.items()
            },
            decision=decisions.decision(row),
            served_by=served_by,
        )
        for row, claim in enumerate(claims)
    ]

"""From claims to triage results: predictions, the policy's decision, and who served them."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

import numpy as np

from claims.domain.decision import Probabilities, decide_all, policy_fields
from claims.domain.language import LanguageDetector
from claims.model.explain import explain as explain_answers
from claims.model.predictor import Predictor, TunedPredictor
from schemas.claim import Claim
from schemas.policy import DecisionPolicy
from schemas.triage import LabelProbability, ServedBy, TaskPrediction, TriageResult

ALTERNATIVES = 3
log = logging.getLogger("claims.triage")


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
    explain: bool = False,
    languages: LanguageDetector | None = None,
) -> list[TriageResult]:
    """Answers that need review carry an explanation, and every answer does when `explain`
    asks; the base model's answers carry none. Each says the language its claim was read as,
    given or detected by `languages`."""
    detector = languages if languages is not None else LanguageDetector()
    probabilities = predictor.predict_proba(claims)
    served_by = ServedBy(
        source=predictor.source,
        model_version=predictor.model_version,
        fallback_reason=fallback_reason,
    )
    chosen = chosen_labels(predictor, probabilities)
    fields = policy_fields(claims, policy)
    decisions = decide_all(fields, probabilities, chosen, predictor.labels, policy, fallback_reason)
    results = [
        TriageResult(
            prediction_id=f"pr-{uuid.uuid4().hex}",
            claim_id=claim.claim_id,
            predictions={
                task: task_prediction(predictor.labels[task], values[row], chosen[task][row])
                for task, values in probabilities.items()
            },
            decision=decisions.decision(row),
            served_by=served_by,
            language=detector.read(claim),
        )
        for row, claim in enumerate(claims)
    ]
    explained = [
        row for row, result in enumerate(results) if explain or result.decision.needs_review
    ]
    if explained and isinstance(predictor, TunedPredictor):
        try:
            explanations = explain_answers(
                [claims[row] for row in explained],
                [results[row] for row in explained],
                predictor,
                policy,
            )
        except Exception as error:  # the answer stands without its explanation
            # the kind only: a message may quote what a claim holds
            log.error("explaining %d answers failed: %s", len(explained), type(error).__name__)
        else:
            for row, explanation in zip(explained, explanations, strict=True):
                results[row].explanation = explanation
    return results

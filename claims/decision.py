"""Applying the decision policy to one claim's predictions: one route, and whether a person
must look. The policy is data; this is the only code that reads it."""

from __future__ import annotations

from claims.features import FeatureError, numeric_value
from schemas.claim import Claim
from schemas.policy import Condition, DecisionPolicy, TaskCondition
from schemas.triage import Decision, ReviewReason, TaskPrediction


def _holds(condition: Condition, claim: Claim, predictions: dict[str, TaskPrediction]) -> bool:
    if isinstance(condition, TaskCondition):
        probabilities = predictions[condition.task].probabilities
        probability = sum(probabilities.get(label, 0.0) for label in condition.labels)
        return (condition.min_probability is None or probability >= condition.min_probability) and (
            condition.max_probability is None or probability <= condition.max_probability
        )
    try:
        value = numeric_value(claim, condition.field)
    except FeatureError:
        return False
    if value is None:
        return False
    return (condition.min is None or value >= condition.min) and (
        condition.max is None or value <= condition.max
    )


def decide(
    claim: Claim,
    predictions: dict[str, TaskPrediction],
    policy: DecisionPolicy,
    fallback_reason: str | None,
) -> Decision:
    route, route_reason = policy.default_route, "no routing rule applies"
    for rule in policy.routes:
        if all(_holds(condition, claim, predictions) for condition in rule.when):
            route, route_reason = rule.route, rule.reason
            break
    reasons: list[ReviewReason] = []
    if route in policy.review_routes:
        reasons.append(ReviewReason(code="route", detail=f"route {route}: {route_reason}"))
    for task, prediction in predictions.items():
        if prediction.probability < policy.min_confidence:
            reasons.append(
                ReviewReason(
                    code="low_confidence",
                    detail=f"{task}: {prediction.label} at {prediction.probability:.0%}",
                )
            )
    if fallback_reason is not None and policy.review_on_fallback:
        reasons.append(
            ReviewReason(
                code="fallback_model", detail=f"served by the base model: {fallback_reason}"
            )
        )
    return Decision(
        route=route,
        route_reason=route_reason,
        needs_review=bool(reasons),
        review_reasons=reasons,
        policy_version=policy.version,
    )

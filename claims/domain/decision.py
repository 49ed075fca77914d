"""Applying the decision policy to a batch of predictions at once: one route per claim, and
whether a person must look. The policy is data; this is the only code that reads it.

Whole arrays, not one claim at a time: backlog scoring decides tens of thousands of claims a
second, and the service's answers come from the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from claims.model.features import FeatureError, numeric_value
from schemas.claim import Claim
from schemas.policy import Condition, DecisionPolicy, FieldCondition, ReviewCode, TaskCondition
from schemas.triage import Decision, ReviewReason

Probabilities = dict[str, np.ndarray]  # task -> (claims, labels)


@dataclass
class Decisions:
    """One entry per claim, in input order."""

    routes: list[str]
    route_reasons: list[str]
    route_rules: list[int | None]  # the rule that routed, counted from 1; None: the default
    review_reasons: list[list[tuple[ReviewCode, str, str | None]]]  # (code, detail, task)
    policy_version: str

    def decision(self, row: int) -> Decision:
        return Decision(
            route=self.routes[row],
            route_reason=self.route_reasons[row],
            route_rule=self.route_rules[row],
            needs_review=bool(self.review_reasons[row]),
            review_reasons=[
                ReviewReason(code=code, detail=detail, task=task)
                for code, detail, task in self.review_reasons[row]
            ],
            policy_version=self.policy_version,
        )


def _within(values: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """NaN (a missing field) is never within any bounds."""
    holds = ~np.isnan(values)
    if low is not None:
        holds &= values >= low
    if high is not None:
        holds &= values <= high
    return holds


def policy_fields(claims: Sequence[Claim], policy: DecisionPolicy) -> dict[str, np.ndarray]:
    """The claim fields the policy's rules read, one array each (NaN where a claim lacks it):
    computed where the claims are parsed, so deciding needs no claim objects."""
    fields = {
        condition.field
        for rule in policy.routes
        for condition in rule.when
        if isinstance(condition, FieldCondition)
    }
    return {field: _field_values(claims, field) for field in sorted(fields)}


def _field_values(claims: Sequence[Claim], field: str) -> np.ndarray:
    values = np.full(len(claims), np.nan)
    for row, claim in enumerate(claims):
        try:
            value = numeric_value(claim, field)
        except FeatureError:
            continue
        if value is not None:
            values[row] = value
    return values


def _holds(
    condition: Condition,
    fields: dict[str, np.ndarray],
    probabilities: Probabilities,
    labels: dict[str, list[str]],
) -> np.ndarray:
    if isinstance(condition, TaskCondition):
        names = labels[condition.task]
        columns = [names.index(label) for label in condition.labels if label in names]
        summed = probabilities[condition.task][:, columns].sum(axis=1)
        return _within(summed, condition.min_probability, condition.max_probability)
    assert isinstance(condition, FieldCondition)
    return _within(fields[condition.field], condition.min, condition.max)


def decide_all(
    fields: dict[str, np.ndarray],
    probabilities: Probabilities,
    chosen: dict[str, np.ndarray],
    labels: dict[str, list[str]],
    policy: DecisionPolicy,
    fallback_reason: str | None = None,
) -> Decisions:
    """`chosen[task]` is each claim's predicted label index (the predictor's decision);
    `fields` are `policy_fields` of the same claims."""
    count = len(next(iter(chosen.values()))) if chosen else 0
    rule_of = np.full(count, -1)  # the first rule that holds; -1: the default route
    undecided = np.ones(count, dtype=bool)
    for index, rule in enumerate(policy.routes):
        holds = undecided.copy()
        for condition in rule.when:
            holds &= _holds(condition, fields, probabilities, labels)
        rule_of[holds] = index
        undecided &= ~holds
    named = [(rule.route, rule.reason) for rule in policy.routes]
    default = (policy.default_route, "no routing rule applies")
    picked = [named[i] if i >= 0 else default for i in rule_of]
    routes, route_reasons = [route for route, _ in picked], [reason for _, reason in picked]

    reasons: list[list[tuple[ReviewCode, str, str | None]]] = [[] for _ in range(count)]
    for row, (route, reason) in enumerate(zip(routes, route_reasons, strict=True)):
        if route in policy.review_routes:
            reasons[row].append(("route", f"route {route}: {reason}", None))
    for task, values in probabilities.items():
        top = values[np.arange(count), chosen[task]]
        for row in np.flatnonzero(top < policy.min_confidence).tolist():
            label = labels[task][chosen[task][row]]
            reasons[row].append(("low_confidence", f"{task}: {label} at {top[row]:.0%}", task))
    if fallback_reason is not None and policy.review_on_fallback:
        for row_reasons in reasons:
            row_reasons.append(
                ("fallback_model", f"served by the base model: {fallback_reason}", None)
            )
    rules = [int(index) + 1 if index >= 0 else None for index in rule_of]
    return Decisions(routes, route_reasons, rules, reasons, policy.version)

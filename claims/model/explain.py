"""Why the specialist answered as it did: per task, the phrases of the narrative and the
structured fields that raised and lowered the chosen label's probability, and the decision's
reasons in words.

Phrases by occlusion: each phrase is removed in turn and the claim answered again, every
variant of every claim in one call of the predictor, so the encoder sees them in as few passes
as its batch size allows; a phrase's weight is how much the served probability falls without
it. Fields by the exact per-feature contributions of the boosted member (LightGBM's
`pred_contrib`) and of the linear member (coefficient times the feature standardised by its
training mean and spread), each scaled by that member's weight in the stack.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from claims.model.features import field_value
from claims.model.predictor import TunedPredictor
from claims.model.stack import BOOSTED, LINEAR, BoostedPartner
from schemas.claim import Claim
from schemas.explanation import Explanation, FieldFactor, PhraseFactor, TaskExplanation
from schemas.policy import DecisionPolicy, TaskCondition
from schemas.triage import TriageResult

TOP_FACTORS = 3  # raising, and as many lowering, per task
PHRASE_WORDS = 4  # a clause longer than this is cut into pieces of this many words
MAX_PHRASES = 24  # past it, longer phrases: the cost of an explanation stays bounded
NARRATIVE_WORDS = "narrative words"  # the boosted member's inputs from the text model

_WORD = re.compile(r"\S+")
_CLAUSE_END = re.compile(r"[.,;:!?)]$")

Factor = TypeVar("Factor", PhraseFactor, FieldFactor)


def phrase_spans(text: str) -> list[tuple[int, int]]:
    """The narrative's phrases as (start, end) character spans: clauses, cut into pieces of
    up to PHRASE_WORDS words, and never more than MAX_PHRASES of them."""
    words = [(match.start(), match.end(), match.group()) for match in _WORD.finditer(text)]
    size = max(PHRASE_WORDS, math.ceil(len(words) / MAX_PHRASES))
    spans = _pieces(words, size, at_clauses=True)
    return spans if len(spans) <= MAX_PHRASES else _pieces(words, size, at_clauses=False)


def _pieces(
    words: list[tuple[int, int, str]], size: int, *, at_clauses: bool
) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    first: int | None = None
    count = 0
    for start, end, word in words:
        first = start if first is None else first
        count += 1
        if count == size or (at_clauses and _CLAUSE_END.search(word)):
            spans.append((first, end))
            first, count = None, 0
    if first is not None:
        spans.append((first, words[-1][1]))
    return spans


def without(text: str, start: int, end: int) -> str:
    """The text with its characters [start, end) removed, and the spaces around them joined."""
    return f"{text[:start].rstrip()} {text[end:].lstrip()}".strip()


def explain(
    claims: Sequence[Claim],
    results: Sequence[TriageResult],
    predictor: TunedPredictor,
    policy: DecisionPolicy,
    top: int = TOP_FACTORS,
) -> list[Explanation]:
    """One explanation per claim, for the answers `predictor` gave them under `policy`."""
    spans = [phrase_spans(claim.description) for claim in claims]
    variants: list[Claim] = []
    for claim, claim_spans in zip(claims, spans, strict=True):
        variants.append(claim)
        variants += [
            claim.model_copy(update={"description": without(claim.description, start, end)})
            for start, end in claim_spans
        ]
    probabilities = predictor.predict_proba(variants)
    fields = field_factors(claims, results, predictor)
    explanations, first = [], 0
    for row, (claim, result) in enumerate(zip(claims, results, strict=True)):
        count = len(spans[row])
        tasks = {}
        for task, prediction in result.predictions.items():
            label = predictor.labels[task].index(prediction.label)
            served = probabilities[task][first : first + count + 1, label]
            phrases = [
                PhraseFactor(
                    text=claim.description[start:end],
                    start=start,
                    end=end,
                    weight=float(served[0] - without_it),
                )
                for (start, end), without_it in zip(spans[row], served[1:], strict=True)
            ]
            explained = TaskExplanation(
                label=prediction.label,
                probability=prediction.probability,
                phrases=strongest(phrases, top),
                fields=strongest(fields[row].get(task, []), top),
                summary="",
            )
            explained.summary = _summary(explained)
            tasks[task] = explained
        first += count + 1
        explanations.append(
            Explanation(tasks=tasks, reasons=decision_reasons(claim, result, tasks, policy))
        )
    return explanations


def field_factors(
    claims: Sequence[Claim], results: Sequence[TriageResult], predictor: TunedPredictor
) -> list[dict[str, list[FieldFactor]]]:
    """Per claim and task, each field's share of the served log-odds of the chosen label, as
    the boosted and linear members compute it exactly; none without them in the stack."""
    partner = predictor.preparer.partner
    explained: list[dict[str, list[FieldFactor]]] = [{} for _ in claims]
    if partner is None or not claims:
        return explained
    features = predictor.preparer.features
    inputs = partner.inputs([claim.description for claim in claims], features.transform(claims))
    columns = features.column_fields()
    columns += [NARRATIVE_WORDS] * (inputs.shape[1] - len(columns))
    names = list(dict.fromkeys(columns))
    by_name = np.array([[column == name for name in names] for column in columns], dtype=float)
    for task, weights in partner.state.stack_weights.items():
        if not weights.get(BOOSTED) and not weights.get(LINEAR):
            continue
        chosen = [predictor.labels[task].index(r.predictions[task].label) for r in results]
        summed = _member_contributions(partner, task, inputs, weights) @ by_name
        for row, claim in enumerate(claims):
            explained[row][task] = [
                FieldFactor(field=name, value=_value(claim, name), weight=float(weight))
                for name, weight in zip(names, summed[row, chosen[row]], strict=True)
            ]
    return explained


def _member_contributions(
    partner: BoostedPartner, task: str, inputs: np.ndarray, weights: dict[str, float]
) -> np.ndarray:
    """(claims, labels, features): each feature's share of each label's raw score, summed
    over the boosted and linear members by their stack weights."""
    labels = partner.state.text.label_counts[task]
    summed = np.zeros((len(inputs), labels, inputs.shape[1]))
    if weights.get(BOOSTED):
        raw = np.asarray(
            partner.boosters[task].predict(inputs, pred_contrib=True, num_threads=partner.threads)
        )
        width = inputs.shape[1] + 1  # and LightGBM's bias, last
        if raw.shape[1] == width:  # binary: the raw score is label 1's log-odds
            shares = np.stack([-raw[:, :-1], raw[:, :-1]], axis=1)
        else:
            shares = raw.reshape(len(inputs), labels, width)[:, :, :-1]
        summed += weights[BOOSTED] * shares
    if weights.get(LINEAR):
        summed += weights[LINEAR] * partner.linear_contributions(task, inputs)
    return summed


def _value(claim: Claim, name: str) -> str | None:
    if name == NARRATIVE_WORDS:
        return None
    value = field_value(claim, name)
    return None if value is None or value == "" else str(value)


def strongest(factors: Sequence[Factor], top: int) -> list[Factor]:
    """The `top` that raised most, strongest first, then the `top` that lowered most."""
    raising = sorted((f for f in factors if f.weight > 0), key=lambda f: -f.weight)
    lowering = sorted((f for f in factors if f.weight < 0), key=lambda f: f.weight)
    return raising[:top] + lowering[:top]


def _named(factor: PhraseFactor | FieldFactor) -> str:
    if isinstance(factor, PhraseFactor):
        return f"“{factor.text}” ({factor.weight * 100:+.0f} pts)"
    shown = factor.field if factor.value is None else f"{factor.field} = {factor.value}"
    return f"{shown} ({factor.weight:+.2f} log-odds)"


def _drivers(explained: TaskExplanation, top: int = 2) -> str:
    factors: list[PhraseFactor | FieldFactor] = [*explained.phrases, *explained.fields]
    raising = [_named(f) for f in sorted(factors, key=lambda f: -f.weight)[:top] if f.weight > 0]
    lowering = [_named(f) for f in sorted(factors, key=lambda f: f.weight)[:top] if f.weight < 0]
    parts = []
    if raising:
        parts.append("raised by " + ", ".join(raising))
    if lowering:
        parts.append("lowered by " + ", ".join(lowering))
    return "; ".join(parts) or "no phrase or field moved it"


def _summary(explained: TaskExplanation) -> str:
    return f"{explained.label} at {explained.probability:.0%}: {_drivers(explained)}"


def decision_reasons(
    claim: Claim,
    result: TriageResult,
    tasks: dict[str, TaskExplanation],
    policy: DecisionPolicy,
) -> list[str]:
    """The rule that routed, what its conditions read and the factors behind them; then each
    reason for review, with the factors behind a low confidence."""
    decision = result.decision
    if decision.route_rule is None:
        reasons = [f"route {decision.route}: no rule of policy {decision.policy_version} applies"]
    else:
        rule = policy.routes[decision.route_rule - 1]
        read = []
        for condition in rule.when:
            if isinstance(condition, TaskCondition):
                probabilities = result.predictions[condition.task].probabilities
                summed = sum(probabilities.get(label, 0.0) for label in condition.labels)
                text = f"{condition.task} {' or '.join(condition.labels)} at {summed:.0%}"
                explained = tasks.get(condition.task)
                if explained is not None and explained.label in condition.labels:
                    text += f", {_drivers(explained)}"
                read.append(text)
            else:
                read.append(f"{condition.field} = {_value(claim, condition.field)}")
        reasons = [
            f"route {decision.route} by rule {decision.route_rule} of policy "
            f"{decision.policy_version} ({rule.reason}): " + "; ".join(read)
        ]
    for reason in decision.review_reasons:
        text = f"review: {reason.detail}"
        if reason.task in tasks:
            text += f", {_drivers(tasks[reason.task])}"
        reasons.append(text)
    return reasons

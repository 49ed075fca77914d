"""`claims score --explain`: each scored row's top factors as columns of the output.

The columns follow the plain ones, in this order:

- per task, `<task>_explanation`: the summary sentence (it opens with the chosen label);
  `<task>_raising` and `<task>_lowering`: the phrases, then the structured fields, that raised
  (lowered) the chosen label's probability most, strongest first, joined by "; ". Each factor
  reads `+0.1234 phrase "text"` (the served probability minus that without the phrase) or
  `-0.5678 field "name" = "value"` (its share of the served log-odds; no `= "value"` where the
  claim lacks it): weights to four significant digits, names and values quoted as JSON
  strings, so `FACTOR` parses any of them;
- `decision_reasons`: the policy rule that routed and each reason for review, with the factors
  behind them, joined by " | ";
- `explanation_error`: empty when the row is explained; else why not, and the other explanation
  columns are empty. The row keeps its scores: explaining is an addition, and a row the model
  answered is never turned into a reject by it.

Explaining answers each claim again once per phrase (phrase occlusion), so it runs a slice of a
chunk's claims at a time: memory stays bounded by the slice, whatever the chunk size.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from claims.domain.decision import Probabilities, decide_all
from claims.domain.triage import task_prediction
from claims.model.explain import explain
from claims.model.predictor import TunedPredictor
from schemas.claim import Claim
from schemas.explanation import Explanation, FieldFactor, PhraseFactor
from schemas.policy import DecisionPolicy
from schemas.triage import ServedBy, TriageResult

FACTORS = "; "
REASONS = " | "
ERROR = "explanation_error"
PER_TASK = ("explanation", "raising", "lowering")
_QUOTED = r'"(?:[^"\\]|\\.)*"'
FACTOR = re.compile(
    rf"(?P<weight>[+-]\d+(?:\.\d+)?(?:e[+-]\d+)?) (?P<kind>phrase|field) (?P<name>{_QUOTED})"
    rf"(?: = (?P<value>{_QUOTED}))?"
)


def explanation_fields(tasks: Sequence[str]) -> list[pa.Field]:
    """The columns `--explain` adds, after the plain ones."""
    names = [f"{task}_{end}" for task in tasks for end in PER_TASK]
    return [pa.field(name, pa.string()) for name in [*names, "decision_reasons", ERROR]]


def factor_text(factor: PhraseFactor | FieldFactor) -> str:
    if isinstance(factor, PhraseFactor):
        return f"{factor.weight:+.4g} phrase {json.dumps(factor.text, ensure_ascii=False)}"
    text = f"{factor.weight:+.4g} field {json.dumps(factor.field, ensure_ascii=False)}"
    if factor.value is not None:
        text += f" = {json.dumps(factor.value, ensure_ascii=False)}"
    return text


def _factors(factors: Sequence[PhraseFactor | FieldFactor], raising: bool) -> str:
    return FACTORS.join(factor_text(f) for f in factors if (f.weight > 0) == raising)


def explained_row(explanation: Explanation | None, tasks: Sequence[str]) -> dict[str, str | None]:
    """One row's explanation columns, but its error; all empty without an explanation."""
    row: dict[str, str | None] = {}
    for task in tasks:
        explained = explanation.tasks.get(task) if explanation is not None else None
        if explained is None:
            row.update(dict.fromkeys(f"{task}_{end}" for end in PER_TASK))
            continue
        factors: list[PhraseFactor | FieldFactor] = [*explained.phrases, *explained.fields]
        row[f"{task}_explanation"] = explained.summary
        row[f"{task}_raising"] = _factors(factors, raising=True)
        row[f"{task}_lowering"] = _factors(factors, raising=False)
    row["decision_reasons"] = REASONS.join(explanation.reasons) if explanation else None
    return row


def explain_rows(
    claims: Sequence[Claim],
    fields: dict[str, np.ndarray],
    probabilities: Probabilities,
    chosen: dict[str, np.ndarray],
    predictor: TunedPredictor,
    policy: DecisionPolicy,
) -> dict[str, list[str | None]]:
    """The explanation columns of a chunk's scored claims, in their order, from the answers
    already computed for them (`fields` are their `policy_fields`). A slice of claims is
    explained at a time; when one fails, its claims are explained one by one, and a claim that
    fails alone gets its `explanation_error` (the error's kind: a message may quote the claim)."""
    tasks = list(predictor.labels)
    columns: dict[str, list[str | None]] = {field.name: [] for field in explanation_fields(tasks)}
    results = _results(claims, fields, probabilities, chosen, predictor, policy)
    size = max(1, predictor.batch_size)
    for start in range(0, len(claims), size):
        rows = range(start, min(start + size, len(claims)))
        try:
            explanations = explain(
                [claims[i] for i in rows], [results[i] for i in rows], predictor, policy
            )
            outcomes: list[tuple[Explanation | None, str | None]] = [
                (explanation, None) for explanation in explanations
            ]
        except Exception:  # find the claims at fault; explain the others
            outcomes = [_explained_alone(claims[i], results[i], predictor, policy) for i in rows]
        for explanation, error in outcomes:
            row = explained_row(explanation, tasks)
            row[ERROR] = error
            for name, value in row.items():
                columns[name].append(value)
    return columns


def _explained_alone(
    claim: Claim, result: TriageResult, predictor: TunedPredictor, policy: DecisionPolicy
) -> tuple[Explanation | None, str | None]:
    try:
        return explain([claim], [result], predictor, policy)[0], None
    except Exception as error:
        return None, f"explaining failed: {type(error).__name__}"


def _results(
    claims: Sequence[Claim],
    fields: dict[str, np.ndarray],
    probabilities: Probabilities,
    chosen: dict[str, np.ndarray],
    predictor: TunedPredictor,
    policy: DecisionPolicy,
) -> list[TriageResult]:
    """The answers as the service gives them, which `explain` reads: the same probabilities,
    labels and decisions as the output's columns."""
    labels = predictor.labels
    decisions = decide_all(fields, probabilities, chosen, labels, policy)
    served_by = ServedBy(source=predictor.source, model_version=predictor.model_version)
    return [
        TriageResult(
            prediction_id=f"pr-{uuid.uuid4().hex}",
            claim_id=claim.claim_id,
            predictions={
                task: task_prediction(labels[task], values[row], chosen[task][row])
                for task, values in probabilities.items()
            },
            decision=decisions.decision(row),
            served_by=served_by,
        )
        for row, claim in enumerate(claims)
    ]

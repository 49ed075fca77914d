"""The promotion gate: a challenger replaces the champion only if nothing gets worse.

Challenger, champion and base model are scored on the same slices; the decision keeps every
number it was taken on, whatever it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

from claims.data.dataset import LabelledClaims
from claims.model.predictor import Predictor
from schemas.config import RetrainingConfig, SpecialistConfig, TaskKind
from schemas.registry import GateCheck, GateDecision, Verdict
from training.metrics import primary_metric, score_predictions

SYSTEMS = ("champion", "challenger", "base")
HOLDOUT, FEEDBACK = "holdout", "feedback"


def gate_metric(slice_name: str, kind: TaskKind) -> str:
    """The task's primary metric on the holdout; on corrected claims, agreement with the
    corrections, since a slice of corrections often holds one label only (no AUC, and a
    macro-F1 that punishes every other label predicted)."""
    return "accuracy" if slice_name == FEEDBACK else primary_metric(kind)


def score_slice(
    config: SpecialistConfig, predictor: Predictor, claims: LabelledClaims
) -> dict[str, dict[str, float]]:
    """task -> metrics, on the rows labelled for that task; empty when the slice is."""
    if not len(claims):
        return {}
    probabilities = predictor.predict_proba(claims.claims)
    return score_predictions(config, probabilities, claims, predictor.labels, predictor.decide)


def judge(
    config: SpecialistConfig,
    scores: Mapping[str, Mapping[str, Mapping[str, dict[str, float]]]],
    champion_version: str,
    challenger_version: str,
) -> GateDecision:
    """`scores`: slice -> system ('champion', 'challenger', 'base') -> task -> metrics.

    Rejects if the frozen holdout cannot gate every task (fewer than `min_rows` labelled
    claims, or an undefined metric), if any gated metric falls by more than the tolerance, or if
    none rises by the minimum improvement. A feedback slice too small to gate is shown, not
    gated: the holdout is the yardstick nobody can move, so without it nothing is promoted.
    """
    rules: RetrainingConfig = config.retraining
    checks = []
    for slice_name, systems in scores.items():
        for task in config.tasks:
            metric = gate_metric(slice_name, task.kind)
            values = {
                system: systems.get(system, {}).get(task.name, {}).get(metric) for system in SYSTEMS
            }
            rows = int(systems.get("champion", {}).get(task.name, {}).get("rows", 0))
            champion, challenger = values["champion"], values["challenger"]
            measurable = (
                rows >= rules.min_rows
                and champion is not None
                and challenger is not None
                and not math.isnan(champion)
                and not math.isnan(challenger)
            )
            change = (
                challenger - champion
                if measurable and champion is not None and challenger is not None
                else None
            )
            verdict: Verdict
            if change is None:
                verdict = "not_gated"
            elif change < -rules.tolerance:
                verdict = "fell"
            elif change >= rules.min_improvement:
                verdict = "improved"
            else:
                verdict = "held"
            checks.append(
                GateCheck(
                    slice=slice_name,
                    task=task.name,
                    metric=metric,
                    rows=rows,
                    champion=champion,
                    challenger=challenger,
                    base=values["base"],
                    change=change,
                    verdict=verdict,
                )
            )
    gated_on_holdout = {
        check.task for check in checks if check.slice == HOLDOUT and check.verdict != "not_gated"
    }
    ungated = [task.name for task in config.tasks if task.name not in gated_on_holdout]
    fell = [check for check in checks if check.verdict == "fell"]
    improved = [check for check in checks if check.verdict == "improved"]
    if ungated:
        reason = "rejected: the frozen holdout cannot gate " + "; ".join(
            _describe_ungated(checks, task, rules.min_rows) for task in ungated
        )
    elif fell:
        reason = "rejected: " + "; ".join(_describe(check) for check in fell)
    elif not improved:
        reason = "rejected: no task's primary metric improved by " + f"{rules.min_improvement}"
    else:
        reason = "promoted: " + "; ".join(_describe(check) for check in improved)
    return GateDecision(
        promoted=not ungated and not fell and bool(improved),
        reason=reason,
        champion_version=champion_version,
        challenger_version=challenger_version,
        tolerance=rules.tolerance,
        min_improvement=rules.min_improvement,
        checks=checks,
        decided_at=datetime.now(UTC),
    )


def _describe(check: GateCheck) -> str:
    return (
        f"{check.task} {check.metric} on {check.slice} {check.champion:.3f} -> "
        f"{check.challenger:.3f} ({check.change:+.3f})"
    )


def _describe_ungated(checks: list[GateCheck], task: str, min_rows: int) -> str:
    check = next((c for c in checks if c.slice == HOLDOUT and c.task == task), None)
    if check is None:
        return f"{task} (no holdout slice was scored)"
    if check.rows < min_rows:
        return f"{task} ({check.rows} labelled claims, fewer than min_rows {min_rows})"
    return f"{task} ({check.metric} is undefined on its {check.rows} labelled claims)"

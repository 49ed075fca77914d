"""The frozen holdout nobody can talk round: feedback never shrinks or relabels it, and a retrain
whose holdout cannot gate a task is never promoted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from claims.data.dataset import LabelledClaims, hash_fraction, load_claims
from schemas.claim import Claim
from schemas.config import SpecialistConfig
from schemas.feedback import FeedbackRecord
from tests.conftest import quick_config
from training.gate import judge
from training.retrain import gate_challenger, merge_feedback


class AnswerSheet:
    """A system that answers each claim with the labels written for it: the gate judges what a
    model answers, so a challenger of known quality is a table of its answers."""

    source = "tuned"

    def __init__(
        self, version: str, labels: dict[str, list[str]], answers: dict[str, dict[str, str]]
    ) -> None:
        self.model_version = version
        self.labels = labels
        self.answers = answers

    def predict_proba(self, claims: Sequence[Claim]) -> dict[str, np.ndarray]:
        result = {}
        for task, names in self.labels.items():
            table = np.zeros((len(claims), len(names)), dtype=np.float32)
            for row, claim in enumerate(claims):
                table[row, names.index(self.answers[claim.claim_id][task])] = 1.0
            result[task] = table
        return result

    def decide(self, task: str, probabilities: np.ndarray) -> np.ndarray:
        return probabilities.argmax(axis=1)


def correction(number: int, claim_id: str, labels: dict[str, str]) -> FeedbackRecord:
    return FeedbackRecord(
        feedback_id=f"fb-{number}",
        claim_id=claim_id,
        labels=labels,
        reason_code="misclassified",
        adjuster_id="adj-9",
        confirmed=True,
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def label_names(config: SpecialistConfig) -> dict[str, list[str]]:
    return {task.name: list(task.labels) for task in config.tasks}


def history_answers(history: LabelledClaims, names: dict[str, list[str]]) -> dict:
    """History's own label for every claim; a fixed first label where history has none."""
    return {
        claim.claim_id: {
            task: history.labels[task][row] or names[task][0] for task in history.labels
        }
        for row, claim in enumerate(history.claims)
    }


def holdout_ids(history: LabelledClaims) -> list[str]:
    return [c.claim_id for c, test in zip(history.claims, history.is_test, strict=True) if test]


def test_corrections_of_held_out_claims_neither_remove_nor_relabel_them(claims_csv: Path) -> None:
    config = quick_config()
    history = load_claims(claims_csv, config)
    names = label_names(config)
    held_out = holdout_ids(history)
    row_of = {claim.claim_id: row for row, claim in enumerate(history.claims)}
    # every held-out claim "corrected" to another claim type
    corrections = [
        correction(
            number,
            claim_id,
            {
                "claim_type": next(
                    name
                    for name in names["claim_type"]
                    if name != history.labels["claim_type"][row_of[claim_id]]
                )
            },
        )
        for number, claim_id in enumerate(held_out)
    ]
    data = merge_feedback(config, history, corrections, {})
    assert [claim.claim_id for claim in data.holdout.claims] == held_out
    for task, values in data.holdout.labels.items():
        assert values == [history.labels[task][row_of[claim_id]] for claim_id in held_out]
    # the corrections are judged on the feedback slice, and never train
    assert sorted(c.claim_id for c in data.feedback_slice.claims) == sorted(held_out)
    assert not set(held_out) & {c.claim_id for c in data.training.claims}
    assert data.held_out_feedback == [item.feedback_id for item in corrections]


def test_new_claims_never_join_the_holdout_whatever_their_ids(claims_csv: Path) -> None:
    config = quick_config()
    history = load_claims(claims_csv, config)
    # ids chosen to hash into the test split, as an attacker who knows the hash would choose
    chosen = [f"ATTACK-{n}" for n in range(400)]
    chosen = [i for i in chosen if hash_fraction(i) < config.split.test_fraction][:40]
    recorded = {i: Claim(claim_id=i, description="A pipe burst under the sink.") for i in chosen}
    corrections = [
        correction(n, i, {"claim_type": "fire", "severity": "severe"}) for n, i in enumerate(chosen)
    ]
    data = merge_feedback(config, history, corrections, recorded)
    assert [claim.claim_id for claim in data.holdout.claims] == holdout_ids(history)


def test_the_279_correction_attack_does_not_promote_a_challenger_that_fails_the_holdout(
    claims_csv: Path,
) -> None:
    """Confirmed corrections repeating history's own labels, on all but a handful of held-out
    claims, once emptied the holdout below `min_rows`: every holdout check went `not_gated` and
    a challenger that gets every claim type wrong was promoted on the feedback slice alone."""
    config = quick_config()
    history = load_claims(claims_csv, config)
    names = label_names(config)
    held_out = holdout_ids(history)
    row_of = {claim.claim_id: row for row, claim in enumerate(history.claims)}
    left = config.retraining.min_rows - 1
    targeted = held_out[left:]  # all but `left` held-out claims
    assert len(targeted) > 2 * config.retraining.min_rows
    # the attack: "corrections" of severity that repeat history, so nothing looks wrong
    corrections = [
        correction(n, claim_id, {"severity": history.labels["severity"][row_of[claim_id]]})
        for n, claim_id in enumerate(targeted)
        if history.labels["severity"][row_of[claim_id]] is not None
    ]
    data = merge_feedback(config, history, corrections, {})

    truth = history_answers(history, names)
    # the champion agrees with history but misses some severities; the challenger gets every
    # severity right and every claim type wrong
    champion_answers = {
        claim_id: {**answers, "severity": names["severity"][0]} if n % 4 == 0 else answers
        for n, (claim_id, answers) in enumerate(truth.items())
    }
    challenger_answers = {
        claim_id: {
            **answers,
            "claim_type": next(x for x in names["claim_type"] if x != answers["claim_type"]),
        }
        for claim_id, answers in truth.items()
    }
    systems = {
        "champion": AnswerSheet("sp-champion", names, champion_answers),
        "challenger": AnswerSheet("sp-challenger", names, challenger_answers),
        "base": AnswerSheet("base", names, champion_answers),
    }
    decision = gate_challenger(config, data, systems, "sp-champion", "sp-challenger")

    assert not decision.promoted, decision.reason
    holdout = {check.task: check for check in decision.checks if check.slice == "holdout"}
    assert holdout["claim_type"].verdict == "fell"
    assert holdout["claim_type"].challenger == 0.0
    assert holdout["claim_type"].rows == sum(
        history.labels["claim_type"][row_of[i]] is not None for i in held_out
    )
    assert "claim_type macro_f1 on holdout" in decision.reason


def scores(champion: float, challenger: float, rows: int) -> dict:
    def system(value: float) -> dict:
        return {"claim_type": {"macro_f1": value, "accuracy": value, "rows": float(rows)}}

    return {"champion": system(champion), "challenger": system(challenger), "base": system(0.1)}


@pytest.mark.parametrize(
    ("holdout", "words"),
    [
        (scores(0.80, 0.805, rows=5), "5 labelled claims, fewer than min_rows 10"),
        (scores(float("nan"), 0.9, rows=50), "macro_f1 is undefined on its 50 labelled claims"),
        (None, "no holdout slice was scored"),
    ],
)
def test_a_holdout_that_cannot_gate_refuses_promotion_with_its_reason(
    holdout: dict | None, words: str
) -> None:
    from tests.conftest import claim_type_config

    config = claim_type_config()
    slices = {"feedback": scores(0.5, 0.9, rows=100)}  # the feedback alone would promote
    if holdout is not None:
        slices["holdout"] = holdout
    decision = judge(config, slices, "sp-old", "sp-new")
    assert not decision.promoted
    assert decision.reason.startswith("rejected: the frozen holdout cannot gate claim_type")
    assert words in decision.reason

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from claims.config import load_config
from claims.decision import decide
from claims.triage import task_prediction
from schemas.claim import Claim

CONFIG = load_config()
POLICY = CONFIG.policy
LABELS = {task.name: list(task.labels) for task in CONFIG.tasks}
CLAIM = Claim(claim_id="C-1", description="Cracked windshield", initial_estimate=400)


def predictions(**probabilities: list[float]) -> dict:
    return {
        task: task_prediction(LABELS[task], np.asarray(values))
        for task, values in probabilities.items()
    }


def uniform(task: str) -> list[float]:
    return [1 / len(LABELS[task])] * len(LABELS[task])


def confident(task: str, label: str) -> list[float]:
    values = [0.0] * len(LABELS[task])
    values[LABELS[task].index(label)] = 1.0
    return values


def test_a_small_low_severity_claim_is_fast_tracked_without_review() -> None:
    found = predictions(
        claim_type=confident("claim_type", "glass_damage"),
        severity=confident("severity", "low"),
        siu_referral=[0.95, 0.05],
    )
    decision = decide(CLAIM, found, POLICY, None)
    assert decision.route == "fast_track" and not decision.needs_review
    assert decision.policy_version == POLICY.version


def test_a_large_estimate_is_not_fast_tracked() -> None:
    found = predictions(
        claim_type=confident("claim_type", "glass_damage"),
        severity=confident("severity", "low"),
        siu_referral=[0.95, 0.05],
    )
    big = CLAIM.model_copy(update={"initial_estimate": 50_000})
    assert decide(big, found, POLICY, None).route == "standard"


def test_siu_wins_and_asks_for_review() -> None:
    found = predictions(
        claim_type=confident("claim_type", "fire"),
        severity=confident("severity", "low"),
        siu_referral=[0.2, 0.8],
    )
    decision = decide(CLAIM, found, POLICY, None)
    assert decision.route == "siu"
    assert [r.code for r in decision.review_reasons] == ["route"]


def test_low_confidence_and_fallback_are_review_reasons() -> None:
    found = predictions(
        claim_type=uniform("claim_type"), severity=uniform("severity"), siu_referral=[0.9, 0.1]
    )
    decision = decide(CLAIM, found, POLICY, "checkpoint_missing: none given")
    codes = [r.code for r in decision.review_reasons]
    assert codes.count("low_confidence") == 2 and codes[-1] == "fallback_model"


def distribution(size: int) -> st.SearchStrategy[list[float]]:
    return st.lists(st.floats(0.001, 1.0), min_size=size, max_size=size).map(
        lambda v: [x / sum(v) for x in v]
    )


@settings(max_examples=300, deadline=None)
@given(
    claim_type=distribution(len(LABELS["claim_type"])),
    severity=distribution(4),
    siu=st.floats(0.0, 1.0),
    estimate=st.floats(0, 1e6),
)
def test_never_fast_track_while_siu_is_flagged(claim_type, severity, siu, estimate) -> None:
    found = predictions(claim_type=claim_type, severity=severity, siu_referral=[1 - siu, siu])
    claim = CLAIM.model_copy(update={"initial_estimate": estimate})
    decision = decide(claim, found, POLICY, None)
    assert decision.route in POLICY.route_names
    if siu >= 0.5:
        assert decision.route == "siu" and decision.needs_review

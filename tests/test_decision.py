import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from claims.domain.config import load_config
from claims.domain.decision import Decisions, decide_all, policy_fields
from schemas.claim import Claim

CONFIG = load_config()
POLICY = CONFIG.policy
LABELS = {task.name: list(task.labels) for task in CONFIG.tasks}
CLAIM = Claim(claim_id="C-1", description="Cracked windshield", initial_estimate=400)


def decide(
    claims: list[Claim], rows: list[dict[str, list[float]]], fallback: str | None = None
) -> Decisions:
    """Each row's probabilities per task; the most probable label is the chosen one."""
    probabilities = {task: np.asarray([row[task] for row in rows]) for task in rows[0]}
    chosen = {task: values.argmax(axis=1) for task, values in probabilities.items()}
    return decide_all(
        policy_fields(claims, POLICY), probabilities, chosen, LABELS, POLICY, fallback
    )


def uniform(task: str) -> list[float]:
    return [1 / len(LABELS[task])] * len(LABELS[task])


def confident(task: str, label: str) -> list[float]:
    values = [0.0] * len(LABELS[task])
    values[LABELS[task].index(label)] = 1.0
    return values


GLASS = {
    "claim_type": confident("claim_type", "glass_damage"),
    "severity": confident("severity", "low"),
    "siu_referral": [0.95, 0.05],
}
FIRE_SIU = {
    "claim_type": confident("claim_type", "fire"),
    "severity": confident("severity", "low"),
    "siu_referral": [0.2, 0.8],
}
UNSURE = {
    "claim_type": uniform("claim_type"),
    "severity": uniform("severity"),
    "siu_referral": [0.9, 0.1],
}


def test_a_small_low_severity_claim_is_fast_tracked_without_review() -> None:
    decision = decide([CLAIM], [GLASS]).decision(0)
    assert decision.route == "fast_track" and not decision.needs_review
    assert decision.policy_version == POLICY.version


def test_a_large_estimate_is_not_fast_tracked() -> None:
    big = CLAIM.model_copy(update={"initial_estimate": 50_000})
    assert decide([big], [GLASS]).decision(0).route == "standard"


def test_a_claim_without_the_field_is_not_fast_tracked() -> None:
    unknown = CLAIM.model_copy(update={"initial_estimate": None})
    assert decide([unknown], [GLASS]).decision(0).route == "standard"


def test_siu_wins_and_asks_for_review() -> None:
    decision = decide([CLAIM], [FIRE_SIU]).decision(0)
    assert decision.route == "siu"
    assert [r.code for r in decision.review_reasons] == ["route"]


def test_low_confidence_and_fallback_are_review_reasons() -> None:
    decision = decide([CLAIM], [UNSURE], "checkpoint_missing: none given").decision(0)
    codes = [r.code for r in decision.review_reasons]
    assert codes.count("low_confidence") == 2 and codes[-1] == "fallback_model"
    low = [r.detail for r in decision.review_reasons if r.code == "low_confidence"]
    assert low[0].startswith("claim_type: ") and low[0].endswith("%")


def test_each_claim_in_a_batch_is_decided_as_if_alone() -> None:
    big = CLAIM.model_copy(update={"claim_id": "C-2", "initial_estimate": 50_000})
    claims, rows = [CLAIM, big, CLAIM, CLAIM], [GLASS, GLASS, FIRE_SIU, UNSURE]
    together = decide(claims, rows)
    alone = [decide([claim], [row]).decision(0) for claim, row in zip(claims, rows, strict=True)]
    assert [together.decision(i) for i in range(len(claims))] == alone
    assert [d.route for d in alone] == ["fast_track", "standard", "siu", "complex"]


def test_an_empty_batch_has_no_decisions() -> None:
    empty = {task: np.zeros((0, len(names))) for task, names in LABELS.items()}
    chosen = {task: np.zeros(0, dtype=int) for task in LABELS}
    decisions = decide_all(policy_fields([], POLICY), empty, chosen, LABELS, POLICY)
    assert decisions.routes == [] and decisions.review_reasons == []


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
    row = {"claim_type": claim_type, "severity": severity, "siu_referral": [1 - siu, siu]}
    claim = CLAIM.model_copy(update={"initial_estimate": estimate})
    decision = decide([claim], [row]).decision(0)
    assert decision.route in POLICY.route_names
    if siu >= 0.5:
        assert decision.route == "siu" and decision.needs_review

"""The synthetic claims are reproducible, well-formed, varied, and carry the signals they claim."""

from __future__ import annotations

import json
import re
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from claims.data.synthetic import (
    CLAIM_TYPES,
    SEVERITY_NOISE,
    TYPE_NOISE,
    Vocabulary,
    generate_claims,
    generate_claims_with_truth,
)

COLUMNS = [
    "claim_id", "description", "loss_date", "reported_date", "line_of_business", "policy_id",
    "policy_start_date", "initial_estimate", "currency", "claimant_age", "prior_claims",
    "channel", "region", "claim_type", "severity", "siu_referral",
]  # fmt: skip
TEXT_COLUMNS = set(COLUMNS) - {"initial_estimate", "claimant_age", "prior_claims", "siu_referral"}
DATE_COLUMNS = ["loss_date", "reported_date", "policy_start_date"]


@pytest.fixture(scope="module")
def claims() -> pd.DataFrame:
    return generate_claims(20_000, seed=11)


def days(frame: pd.DataFrame, start: str, end: str) -> pd.Series:
    return (pd.to_datetime(frame[end]) - pd.to_datetime(frame[start])).dt.days


def test_same_seed_gives_the_same_frame_and_bytes() -> None:
    first, second = generate_claims(500, seed=3), generate_claims(500, seed=3)
    pd.testing.assert_frame_equal(first, second)
    assert first.to_csv(index=False) == second.to_csv(index=False)


def test_another_seed_gives_other_claims() -> None:
    first, other = generate_claims(500, seed=3), generate_claims(500, seed=4)
    assert (first["description"] != other["description"]).mean() > 0.9


def test_columns_and_types(claims: pd.DataFrame) -> None:
    assert list(claims.columns) == COLUMNS
    for column in TEXT_COLUMNS:
        assert pd.api.types.is_string_dtype(claims[column]), column
    assert pd.api.types.is_float_dtype(claims["initial_estimate"])
    for column in ("claimant_age", "prior_claims", "siu_referral"):
        assert pd.api.types.is_integer_dtype(claims[column]), column
    assert claims.notna().all().all()


def test_values_are_in_their_domains(claims: pd.DataFrame) -> None:
    assert claims["claim_id"].is_unique
    assert claims["claim_id"].str.fullmatch(r"CLM-\d{7}").all()
    assert set(claims["line_of_business"]) == {"auto", "property", "liability", "workers_comp"}
    assert set(claims["channel"]) == {"phone", "web", "agent", "mobile_app", "email"}
    assert set(claims["currency"]) == {"USD", "EUR", "GBP", "CAD"}
    assert (claims["currency"] == "USD").mean() > 0.7
    assert claims["claimant_age"].between(16, 95).all()
    assert (claims["prior_claims"] >= 0).all()
    assert set(claims["siu_referral"]) == {0, 1}
    assert claims["description"].str.len().between(1, 1500).all()
    estimates = claims["initial_estimate"]
    assert np.isfinite(estimates).all() and (estimates >= 0).all()
    assert (estimates == estimates.round(2)).all()
    assert 0.02 < (estimates == 0).mean() < 0.08  # "not yet estimated"


def test_dates_are_iso_ordered_and_fixed_in_time(claims: pd.DataFrame) -> None:
    for column in DATE_COLUMNS:
        assert claims[column].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all(), column
        assert (claims[column] <= "2025-12-31").all(), column
    assert (claims["loss_date"] >= "2021-01-01").all()
    assert (days(claims, "loss_date", "reported_date") >= 0).all()
    tenure = days(claims, "policy_start_date", "loss_date")
    assert (tenure >= 0).mean() > 0.95
    assert tenure.min() < 14 and tenure.max() > 3 * 365


def test_claim_types_all_present_and_unequal() -> None:
    shares = generate_claims(5_000, seed=2)["claim_type"].value_counts(normalize=True)
    assert set(shares.index) == set(CLAIM_TYPES)
    assert shares.min() >= 0.02
    assert shares["collision"] > 3 * shares["dog_bite"]


def test_severity_has_four_levels_mostly_low(claims: pd.DataFrame) -> None:
    shares = claims["severity"].value_counts(normalize=True)
    assert set(shares.index) == {"low", "medium", "high", "severe"}
    assert shares["low"] > shares["medium"] > shares["high"] > shares["severe"] > 0.03


def test_siu_rate(claims: pd.DataFrame) -> None:
    assert 0.025 <= claims["siu_referral"].mean() <= 0.06


def test_labels_are_noisy_but_mostly_consistent(claims: pd.DataFrame) -> None:
    """About 3% of claim types are replaced, so some disagree with the line of business."""
    expected_line = claims["claim_type"].map({name: t.line for name, t in CLAIM_TYPES.items()})
    assert 0.95 < (expected_line == claims["line_of_business"]).mean() < 0.995


def test_the_hidden_story_is_told_row_for_row_and_explains_the_labels() -> None:
    """The truth a ceiling is read from: the same claims, the labels before their noise, and
    the probability each SIU referral was drawn with."""
    claims, truth = generate_claims_with_truth(20_000, seed=11)
    pd.testing.assert_frame_equal(claims, generate_claims(20_000, seed=11))
    assert list(truth["claim_id"]) == list(claims["claim_id"])
    type_agrees = (truth["claim_type"] == claims["claim_type"]).mean()
    assert 1 - 2 * TYPE_NOISE < type_agrees < 1 - TYPE_NOISE / 2
    # severity is also blurred by the hidden score's own draw, so it agrees less, but mostly
    band_agrees = (truth["severity"] == claims["severity"]).mean()
    assert 0.6 < band_agrees < 1 - SEVERITY_NOISE
    probability = truth["siu_referral"]
    assert probability.between(0, 1, inclusive="neither").all()
    assert abs(probability.mean() - claims["siu_referral"].mean()) < 0.01
    referred = claims["siu_referral"] == 1
    assert probability[referred].mean() > 2 * probability[~referred].mean()


def test_narratives_come_in_three_voices(claims: pd.DataFrame) -> None:
    text = claims["description"]
    upper_case = text == text.str.upper()
    shorthand = text.str.contains(r"\b(?:Clmt|Insd|EE|IV|TP|rec'd|dmg|w/s)\b") & ~upper_case
    first_person = text.str.contains(r"\b(?:I|my|My|we|our|Our)\b") & ~shorthand
    assert 0.10 < upper_case.mean() < 0.30
    assert 0.20 < shorthand.mean() < 0.50
    assert 0.30 < first_person.mean() < 0.60


def test_narratives_vary(claims: pd.DataFrame) -> None:
    sample = generate_claims(2_000, seed=5)["description"]
    assert sample.nunique() > 0.95 * len(sample)
    words = claims["description"].str.split().str.len()
    assert words.min() <= 5 and words.max() >= 100
    negated = claims["description"].str.contains(r"(?i)\bno (?:injuries|inj)\b|denies|not hospital")
    assert negated.mean() > 0.05
    misspelt = claims["description"].str.contains(r"(?i)recieved|collison|ceilng|damge|vehical")
    assert misspelt.any()


def test_short_tenure_raises_siu_rate(claims: pd.DataFrame) -> None:
    short = days(claims, "policy_start_date", "loss_date") <= 60
    assert short.mean() > 0.03
    assert claims["siu_referral"][short].mean() > 2 * claims["siu_referral"][~short].mean()


def test_late_reports_raise_siu_rate_but_do_not_decide_it(claims: pd.DataFrame) -> None:
    late = days(claims, "loss_date", "reported_date") > 30
    rate_late = claims["siu_referral"][late].mean()
    assert claims["siu_referral"][~late].mean() < rate_late < 0.5


def test_severe_claims_have_larger_estimates(claims: pd.DataFrame) -> None:
    means = claims.groupby("severity")["initial_estimate"].mean()
    assert means["low"] < means["medium"] < means["high"] < means["severe"]
    assert means["severe"] > 2 * means["low"]


def test_claim_type_is_learnable_from_text_but_not_perfectly(claims: pd.DataFrame) -> None:
    train, test = claims.iloc[:3000], claims.iloc[3000:4000]
    model = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))
    with threadpool_limits(1):  # a small fit: BLAS threads only contend on a busy machine
        model.fit(train["description"], train["claim_type"])
    accuracy = (model.predict(test["description"]) == test["claim_type"]).mean()
    assert 0.6 <= accuracy <= 0.97


def test_uninformative_narratives_exist(claims: pd.DataFrame) -> None:
    short = claims["description"].str.fullmatch(r"(?i)see attached\.?|call clmt.*|tbd")
    assert 0.002 < short.mean() < 0.05


@pytest.mark.parametrize("n", [0, -5])
def test_rejects_fewer_than_one_claim(n: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate_claims(n)


def test_a_single_claim_works() -> None:
    frame = generate_claims(1, seed=9)
    assert len(frame) == 1 and frame["claim_id"].iloc[0] == "CLM-0000001"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", frame["loss_date"].iloc[0])


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda words: words["events"].pop("dog_bite"), "events has no entry for dog_bite"),
        (lambda words: words["admin"]["code"].pop("liability"), "admin.code has no entry"),
        (lambda words: words["openings"].append("Hi {nobody},"), "placeholder nobody"),
        (lambda words: words["injury"]["first"].pop(), "injury.first"),
        (lambda words: words.update(extra_table=[]), "extra_table"),
    ],
)
def test_the_word_tables_are_checked_when_loaded(change, named: str) -> None:
    shipped = resources.files("claims.data").joinpath("synthetic_words.json").read_text()
    words = json.loads(shipped)
    Vocabulary.model_validate(words)
    change(words)
    with pytest.raises(ValidationError, match=re.escape(named)):
        Vocabulary.model_validate(words)

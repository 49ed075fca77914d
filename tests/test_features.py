from datetime import date

import numpy as np
import pytest

from claims.model.features import FeatureError, StructuredFeatures
from schemas.claim import Claim


def claim(i: int, **fields: object) -> Claim:
    values = {
        "claim_id": f"C-{i}",
        "description": "Hail damaged the roof.",
        "loss_date": date(2024, 5, 10),
        "reported_date": date(2024, 5, 12),
        "policy_start_date": date(2024, 4, 1),
        "initial_estimate": 1000.0 * (i + 1),
        "line_of_business": "property" if i % 2 else "auto",
        **fields,
    }
    return Claim(**values)


def test_fit_transform_scales_numbers_and_one_hot_encodes_categories() -> None:
    claims = [claim(i) for i in range(10)]
    features = StructuredFeatures.fit(
        claims, ["initial_estimate", "report_lag_days", "policy_tenure_days"], ["line_of_business"]
    )
    matrix = features.transform(claims)
    edges = [len(scaling.edges) for scaling in features.numeric]
    assert matrix.shape == (10, features.dimension) == (10, 2 * 3 + sum(edges) + 3)
    assert edges[0] > 5 and edges[1] == 1  # estimates vary; every lag is two days
    assert np.all(matrix[:, 1] == 0)  # nothing missing
    estimate_flags = matrix[:, 2 : 2 + edges[0]]
    assert np.all(np.diff(estimate_flags.sum(axis=1)) >= 0)  # larger estimates pass more edges
    assert matrix[:, -3:].sum(axis=1).tolist() == [1.0] * 10


def test_missing_values_and_unseen_categories_are_encoded_not_guessed() -> None:
    features = StructuredFeatures.fit(
        [claim(i) for i in range(10)], ["initial_estimate"], ["line_of_business"]
    )
    row = features.transform([claim(99, initial_estimate=None, line_of_business="marine")])[0]
    assert row[0] == 0.0 and row[1] == 1.0  # value neutral, missing flag set
    assert not row[2 : 2 + len(features.numeric[0].edges)].any()  # above no edge
    assert row[-1] == 1.0  # the "other" slot


def test_the_fitted_state_is_json_and_round_trips() -> None:
    claims = [claim(i) for i in range(10)]
    features = StructuredFeatures.fit(claims, ["initial_estimate"], ["line_of_business"])
    again = StructuredFeatures.model_validate_json(features.model_dump_json())
    assert np.array_equal(again.transform(claims), features.transform(claims))


def test_a_non_numeric_attribute_names_the_claim_and_field() -> None:
    features = StructuredFeatures.fit([claim(1, attributes={"wages": 500})], ["wages"], [])
    with pytest.raises(FeatureError, match=r"claim C-2: wages: 'lots' is not a number"):
        features.transform([claim(2, attributes={"wages": "lots"})])


def test_an_integer_too_large_for_a_float_is_a_feature_error_not_an_overflow() -> None:
    """JSON allows any integer; float() of one past 1.8e308 raises OverflowError, which the
    service took for the model's failure and a batch job for its own."""
    features = StructuredFeatures.fit([claim(1, attributes={"wages": 500})], ["wages"], [])
    with pytest.raises(FeatureError, match=r"claim C-2: wages: .*too large"):
        features.transform([claim(2, attributes={"wages": 10**400})])

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from schemas.claim import Claim


def errors(**fields: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        Claim.model_validate({"claim_id": "C-1", "description": "Rear-ended at a light", **fields})
    return {".".join(map(str, e["loc"])): e["msg"] for e in caught.value.errors()}


def test_a_plain_first_notice_of_loss_is_accepted() -> None:
    claim = Claim(
        claim_id="C-1",
        description="  Rear-ended at a light, no injuries.  ",
        loss_date=date(2024, 3, 1),
        reported_date=date(2024, 3, 2),
        initial_estimate=1800.0,
        currency="USD",
        attributes={"region": "north", "vehicle_age": 7},
    )
    assert claim.description == "Rear-ended at a light, no injuries."


def test_reported_before_the_loss_names_reported_date() -> None:
    found = errors(loss_date="2024-03-02", reported_date="2024-03-01")
    assert list(found) == ["reported_date"]
    assert "before the loss" in found["reported_date"]


@pytest.mark.parametrize("field", ["loss_date", "reported_date", "policy_start_date"])
def test_dates_in_the_future_are_refused(field: str) -> None:
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    found = errors(**{field: tomorrow})
    assert "in the future" in found[field]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"initial_estimate": -1}, "initial_estimate"),
        ({"description": ""}, "description"),
        ({"description": "x" * 20_001}, "description"),
        ({"currency": "usd"}, "currency"),
        ({"claimant_age": 130}, "claimant_age"),
        ({"prior_claims": -2}, "prior_claims"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_impossible_values_are_refused_by_field(fields: dict, field: str) -> None:
    assert field in errors(**fields)

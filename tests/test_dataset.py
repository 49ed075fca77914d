from pathlib import Path

import pandas as pd
import pytest

from claims.data.dataset import DataError, hash_fraction, label_text, load_claims
from claims.data.tables import TableFormatError, read_table, write_table
from claims.domain.config import load_config


def rows(**overrides: object) -> list[dict]:
    base = {
        "claim_id": "C-1",
        "description": "Pipe burst in the kitchen, water everywhere.",
        "loss_date": "2024-02-01T08:30:00Z",
        "reported_date": "2024-02-03",
        "line_of_business": "property",
        "initial_estimate": "2500.5",
        "claimant_age": "44.0",
        "region": "north",
        "claim_type": "water_damage",
        "severity": "medium",
        "siu_referral": "0",
    }
    second = {**base, "claim_id": "C-2", "siu_referral": "1"}
    return [{**base, **overrides}, second]


def test_rows_become_claims_with_unmapped_columns_as_attributes(tmp_path: Path) -> None:
    path = write_table(pd.DataFrame(rows()), tmp_path / "claims.csv")
    data = load_claims(path, load_config())
    claim = data.claims[0]
    assert claim.loss_date.isoformat() == "2024-02-01"  # a date-time keeps its day
    assert claim.initial_estimate == 2500.5 and claim.claimant_age == 44
    assert claim.attributes == {"region": "north"}  # labels are not attributes
    assert data.labels["siu_referral"] == ["0", "1"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_every_format_reads_the_same(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(rows())
    data = load_claims(write_table(frame, tmp_path / f"claims{suffix}"), load_config())
    assert [c.claim_id for c in data.claims] == ["C-1", "C-2"]
    assert data.labels["severity"] == ["medium", "medium"]


def test_a_bad_row_is_named_with_its_field(tmp_path: Path) -> None:
    path = write_table(pd.DataFrame(rows(reported_date="2024-01-01")), tmp_path / "c.csv")
    with pytest.raises(DataError, match=r"row 1 \(claim_id C-1\): reported_date"):
        load_claims(path, load_config())


def test_a_missing_label_column_is_named(tmp_path: Path) -> None:
    frame = pd.DataFrame(rows()).drop(columns=["severity"])
    with pytest.raises(DataError, match="severity"):
        load_claims(write_table(frame, tmp_path / "c.csv"), load_config())


def test_duplicate_claim_ids_are_refused(tmp_path: Path) -> None:
    frame = pd.DataFrame(rows(claim_id="C-2"))
    with pytest.raises(DataError, match="C-2"):
        load_claims(write_table(frame, tmp_path / "c.csv"), load_config())


def test_an_unknown_file_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TableFormatError, match="unsupported"):
        read_table(tmp_path / "claims.xlsx")


def test_columns_are_renamed_by_the_config(tmp_path: Path) -> None:
    frame = pd.DataFrame(rows()).rename(columns={"description": "Narrative", "claim_id": "No"})
    config = load_config()
    config.input.columns = {"description": "Narrative", "claim_id": "No"}
    data = load_claims(write_table(frame, tmp_path / "c.csv"), config)
    assert data.claims[1].claim_id == "C-2" and "Narrative" not in data.claims[1].attributes


def test_labels_have_one_spelling_whatever_the_file_type() -> None:
    assert [label_text(v) for v in (1, 1.0, "1", True, " 1 ", None, float("nan"), "")] == [
        "1", "1", "1", "1", "1", None, None, None,
    ]  # fmt: skip


def test_rows_without_a_label_are_kept_and_add_nothing_to_that_tasks_loss() -> None:
    from training.labels import IGNORE, class_weights, label_indices

    targets = label_indices("severity", ["low", None, "high"], ["low", "high"], ["a", "b", "c"])
    assert targets.tolist() == [0, IGNORE, 1]
    assert class_weights(targets, 2) == [1.0, 1.0]  # the unlabelled row counts for neither


def test_the_held_out_split_is_stable_and_near_its_fraction() -> None:
    ids = [f"CLM-{i}" for i in range(5000)]
    first = [hash_fraction(i) < 0.2 for i in ids]
    assert first == [hash_fraction(i) < 0.2 for i in ids]
    assert 0.17 < sum(first) / len(ids) < 0.23

"""Turning rows of an insurer's export into validated claims, labels and a fixed held-out split."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from claims.data.tables import read_table
from claims.domain.config import describe_validation_error
from schemas.claim import Claim
from schemas.config import InputConfig, SpecialistConfig, SplitConfig

_CLAIM_FIELDS = [name for name in Claim.model_fields if name != "attributes"]
_DATE_FIELDS = {"loss_date", "reported_date", "policy_start_date"}
_INT_FIELDS = {"claimant_age", "prior_claims"}


class DataError(ValueError):
    """A row or column that cannot be used; the message names the row and the field."""


@dataclass
class LabelledClaims:
    claims: list[Claim]
    labels: dict[str, list[str | None]]
    is_test: list[bool]

    def subset(self, indices: Iterable[int]) -> LabelledClaims:
        indices = list(indices)
        return LabelledClaims(
            claims=[self.claims[i] for i in indices],
            labels={task: [values[i] for i in indices] for task, values in self.labels.items()},
            is_test=[self.is_test[i] for i in indices],
        )

    def split(self) -> tuple[LabelledClaims, LabelledClaims]:
        """(development rows, held-out test rows)."""
        development = [i for i, test in enumerate(self.is_test) if not test]
        held_out = [i for i, test in enumerate(self.is_test) if test]
        return self.subset(development), self.subset(held_out)

    def __len__(self) -> int:
        return len(self.claims)


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def label_text(value: Any) -> str | None:
    """One spelling per label whatever the file type: 1, 1.0, '1' and True are all '1'."""
    if is_missing(value):
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def hash_fraction(key: str, salt: str = "") -> float:
    """A stable number in [0, 1) from a claim id: the same claim always falls in the same split."""
    digest = hashlib.sha256(f"{salt}{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def row_to_claim(row: Mapping[str, Any], mapping: InputConfig, skip: set[str]) -> Claim:
    """Build a claim from one row: mapped columns fill claim fields, the rest become attributes."""
    fields: dict[str, Any] = {}
    used = set(skip)
    for name in _CLAIM_FIELDS:
        column = mapping.columns.get(name, name)
        if column not in row:
            continue
        used.add(column)
        value = row[column]
        if is_missing(value):
            continue
        fields[name] = _coerce(name, value)
    fields["attributes"] = {
        str(column): (None if is_missing(value) else _plain(value))
        for column, value in row.items()
        if column not in used
    }
    return Claim.model_validate(fields)


def _coerce(name: str, value: Any) -> Any:
    if name in _DATE_FIELDS and isinstance(value, str) and len(value) > 10 and value[10] in "T ":
        return value[:10]  # a date-time: the day is what the claim knows
    if name in _INT_FIELDS and isinstance(value, str | float):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    if hasattr(value, "isoformat") and name in _DATE_FIELDS:
        return value.isoformat()[:10]
    return value


def _plain(value: Any) -> Any:
    """numpy and pandas scalars as plain Python values, so they validate and serialise."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _split_flags(frame: pd.DataFrame, claim_ids: list[str], split: SplitConfig) -> list[bool]:
    if split.column is not None:
        if split.column not in frame.columns:
            raise DataError(f"split.column: the file has no column {split.column!r}")
        return [str(value) == split.test_value for value in frame[split.column]]
    return [hash_fraction(claim_id) < split.test_fraction for claim_id in claim_ids]


def frame_to_claims(
    frame: pd.DataFrame, config: SpecialistConfig, *, source: str, require_labels: bool = True
) -> LabelledClaims:
    label_columns = {task.column for task in config.tasks}
    if require_labels:
        missing = sorted(label_columns - set(frame.columns))
        if missing:
            raise DataError(f"{source}: no column {missing} for the tasks that read it")
    skip = label_columns | set(config.input.exclude)
    skip |= {config.split.column} if config.split.column else set()
    claims: list[Claim] = []
    for number, row in enumerate(frame.to_dict(orient="records"), start=1):
        try:
            claims.append(row_to_claim(row, config.input, skip))
        except ValidationError as error:
            claim_id = row.get(config.input.columns.get("claim_id", "claim_id"), "?")
            raise DataError(
                f"{source} row {number} (claim_id {claim_id}): {describe_validation_error(error)}"
            ) from error
    ids = [claim.claim_id for claim in claims]
    if len(set(ids)) != len(ids):
        duplicated = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
        raise DataError(f"{source}: claim_id {duplicated!r} appears more than once")
    labels: dict[str, list[str | None]] = {
        task.name: [label_text(value) for value in frame[task.column]]
        if task.column in frame.columns
        else [None] * len(frame)
        for task in config.tasks
    }
    return LabelledClaims(claims, labels, _split_flags(frame, ids, config.split))


def load_claims(
    path: str | Path, config: SpecialistConfig, *, require_labels: bool = True
) -> LabelledClaims:
    path = Path(path)
    frame = read_table(path)
    if frame.empty:
        raise DataError(f"{path}: the file holds no rows")
    return frame_to_claims(frame, config, source=path.name, require_labels=require_labels)

"""Structured claim fields as numbers the model's heads read beside the narrative.

Fitted on the training rows and saved as JSON in the checkpoint, so serving transforms a new
claim exactly as training did.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from schemas.claim import Claim

MAX_CATEGORIES = 50
QUANTILES = np.linspace(0.05, 0.95, 15)
MIN_CATEGORY_COUNT = 3


def _days_between(start: Any, end: Any) -> float | None:
    return None if start is None or end is None else float((end - start).days)


DERIVED_FIELDS: dict[str, Callable[[Claim], float | None]] = {
    "report_lag_days": lambda claim: _days_between(claim.loss_date, claim.reported_date),
    "policy_tenure_days": lambda claim: _days_between(claim.policy_start_date, claim.loss_date),
    "loss_year": lambda claim: None if claim.loss_date is None else float(claim.loss_date.year),
    "loss_month": lambda claim: None if claim.loss_date is None else float(claim.loss_date.month),
}


class FeatureError(ValueError):
    """A structured field whose value cannot be read as the config says."""


def field_value(claim: Claim, name: str) -> Any:
    """A claim field, a derived field, or an attribute, by name."""
    if name in DERIVED_FIELDS:
        return DERIVED_FIELDS[name](claim)
    if name in Claim.model_fields and name != "attributes":
        return getattr(claim, name)
    return claim.attributes.get(name)


def numeric_value(claim: Claim, name: str) -> float | None:
    value = field_value(claim, name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise FeatureError(f"{name}: {_shown(value)} is not a number") from error
    except OverflowError as error:  # an int beyond any float: the client's, never a crash
        raise FeatureError(f"{name}: {_shown(value)} is too large to be a number") from error
    return number if math.isfinite(number) else None


def _shown(value: Any, limit: int = 40) -> str:
    """The value as a message quotes it: a 4,000-digit number is not repeated whole (and `repr`
    of one past Python's digit limit would itself raise)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _signed_log(values: np.ndarray) -> np.ndarray:
    """Amounts and day counts span orders of magnitude; their logarithm is what separates claims."""
    return np.sign(values) * np.log1p(np.abs(values))


class NumericScaling(BaseModel):
    name: str
    center: float
    scale: float
    edges: list[float] = Field(
        default_factory=list,
        description="Quantile edges; one 'above this edge' flag each lets a small head learn "
        "thresholds and bumps as a tree model would.",
    )


class CategoryVocabulary(BaseModel):
    name: str
    values: list[str]


class StructuredFeatures(BaseModel):
    """fit/transform in scikit-learn's manner; the fitted state is plain JSON."""

    numeric: list[NumericScaling] = []
    categorical: list[CategoryVocabulary] = []

    @property
    def dimension(self) -> int:
        # a numeric field: its value, a missing flag and its edge flags; a category: its values
        # and "other"
        numeric = sum(2 + len(scaling.edges) for scaling in self.numeric)
        return numeric + sum(len(v.values) + 1 for v in self.categorical)

    def column_fields(self) -> list[str]:
        """The field each column of `transform` comes from, in its order: what an explanation
        sums a field's columns by."""
        fields = [s.name for s in self.numeric for _ in range(2 + len(s.edges))]
        return fields + [v.name for v in self.categorical for _ in range(len(v.values) + 1)]

    @classmethod
    def fit(
        cls, claims: Sequence[Claim], numeric: Sequence[str], categorical: Sequence[str]
    ) -> StructuredFeatures:
        scalings = []
        for name in numeric:
            values = _signed_log(_numeric_column(claims, name))
            present = values[~np.isnan(values)]
            center = float(np.median(present)) if present.size else 0.0
            scale = float(np.std(present)) if present.size else 1.0
            edges: np.ndarray | list[float] = (
                np.unique(np.quantile(present, QUANTILES)) if present.size else []
            )
            scalings.append(
                NumericScaling(
                    name=name, center=center, scale=scale or 1.0, edges=[float(e) for e in edges]
                )
            )
        vocabularies = []
        for name in categorical:
            counts = Counter(_category(claim, name) for claim in claims)
            counts.pop(None, None)
            frequent = [
                v
                for v, n in counts.most_common(MAX_CATEGORIES)
                if v is not None and n >= MIN_CATEGORY_COUNT
            ]
            vocabularies.append(CategoryVocabulary(name=name, values=sorted(frequent)))
        return cls(numeric=scalings, categorical=vocabularies)

    def transform(self, claims: Sequence[Claim]) -> np.ndarray:
        columns: list[np.ndarray] = []
        for scaling in self.numeric:
            logged = _signed_log(_numeric_column(claims, scaling.name))
            values = (logged - scaling.center) / scaling.scale
            missing = np.isnan(values)
            columns += [np.where(missing, 0.0, np.clip(values, -6, 6)), missing.astype(float)]
            columns += [(logged > edge).astype(float) for edge in scaling.edges]  # NaN: all 0
        for vocabulary in self.categorical:
            index: dict[str | None, int] = {v: i for i, v in enumerate(vocabulary.values)}
            one_hot = np.zeros((len(claims), len(vocabulary.values) + 1))
            for row, claim in enumerate(claims):
                one_hot[row, index.get(_category(claim, vocabulary.name), len(index))] = 1.0
            columns += list(one_hot.T)
        if not columns:
            return np.zeros((len(claims), 0), dtype=np.float32)
        return np.stack(columns, axis=1).astype(np.float32)


def _numeric_column(claims: Sequence[Claim], name: str) -> np.ndarray:
    values = []
    for claim in claims:
        try:
            value = numeric_value(claim, name)
        except FeatureError as error:
            raise FeatureError(f"claim {claim.claim_id}: {error}") from error
        values.append(np.nan if value is None else value)
    return np.asarray(values, dtype=float)


def _category(claim: Claim, name: str) -> str | None:
    value = field_value(claim, name)
    return None if value is None or value == "" else str(value).strip().lower()

"""The evaluation report: every system scored on the same held-out claims."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Interval(BaseModel):
    low: float
    high: float

    def bracketed(self, signed: bool = False) -> str:
        """As reports print it: [0.906, 0.924], or signed for a difference."""
        form = "+.3f" if signed else ".3f"
        return f"[{self.low:{form}}, {self.high:{form}}]"


class SystemResult(BaseModel):
    description: str
    metrics: dict[str, dict[str, float]] = Field(description="task -> metric -> value")
    intervals: dict[str, Interval] = Field(
        default_factory=dict,
        description="task -> 95% bootstrap interval of the primary metric over the held-out claims",
    )
    specialist_lead: dict[str, Interval] = Field(
        default_factory=dict,
        description=(
            "task -> 95% paired bootstrap interval of the specialist's primary metric minus this "
            "system's: wholly above zero, the specialist is ahead beyond sampling error"
        ),
    )
    fit_seconds: float | None = Field(
        default=None, description="Time to fit on the development rows, where measured here."
    )


class EvaluationReport(BaseModel):
    model_version: str
    created_at: datetime
    data_file: str
    data_sha256: str
    test_rows: int
    primary_metrics: dict[str, str] = Field(description="task -> the metric that ranks systems")
    bootstrap_resamples: int = Field(
        description="Resamples of the held-out claims behind each interval."
    )
    systems: dict[str, SystemResult]

"""The evaluation report: every system scored on the same held-out claims."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class SystemResult(BaseModel):
    description: str
    metrics: dict[str, dict[str, float]] = Field(description="task -> metric -> value")
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
    systems: dict[str, SystemResult]

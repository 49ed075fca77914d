"""Background jobs (retraining) whose state outlives the process that started them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class RetrainEngine(StrEnum):
    """Where a retrain runs: in the job's own process, or as a task on a Ray cluster."""

    local = "local"
    ray = "ray"


class JobStatus(BaseModel):
    job_id: str
    kind: str = Field(description="What the job does, e.g. 'retrain'.")
    state: JobState
    progress: float = Field(ge=0.0, le=1.0)
    message: str = ""
    created_at: datetime
    updated_at: datetime
    result: dict[str, Any] | None = Field(default=None, description="What the job produced.")
    error: str | None = None

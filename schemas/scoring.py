"""What a backlog scoring run reports: every input row is either scored or rejected."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Precision = Literal["fp32", "bf16", "auto"]  # on a CPU; auto is bf16 where it is native


class ScoreSummary(BaseModel):
    rows: int = Field(description="Rows read from the input, unreadable ones included.")
    scored: int
    rejected: int
    resumed_chunks: int = Field(description="Chunks a previous, interrupted run had scored.")
    output: str
    rejects: str
    model_version: str
    precision: str = Field(description="bf16 or fp32: what the model ran in.")
    seconds: float
    claims_per_second: float
    workers: int = Field(
        default=1, description="Processes for the CPU work; 1 is a thread beside the model."
    )
    model_seconds: float | None = Field(
        default=None, description="Spent in the model (the encoder, blending, choosing labels)."
    )
    waiting_seconds: float | None = Field(
        default=None,
        description="The model's thread waiting for the CPU work: near `seconds`, the CPU work "
        "bounds the run; near zero, the model does.",
    )

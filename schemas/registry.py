"""The model registry's records: where each version came from, and why it was (not) promoted."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from schemas.config import Strategy

Verdict = Literal["improved", "held", "fell", "not_gated"]


class GateCheck(BaseModel):
    """One task's primary metric on one evaluation slice, challenger against champion."""

    slice: str = Field(description="'holdout' (the frozen test claims) or 'feedback'.")
    task: str
    metric: str
    rows: int
    champion: float | None
    challenger: float | None
    base: float | None
    change: float | None
    verdict: Verdict


class GateDecision(BaseModel):
    promoted: bool
    reason: str
    champion_version: str
    challenger_version: str
    tolerance: float
    min_improvement: float
    checks: list[GateCheck]
    decided_at: datetime


class Lineage(BaseModel):
    """What a version was trained from: enough to tell why two versions differ."""

    origin: Literal["registered", "retrained"]
    parent_version: str | None = None
    training_data_file: str
    training_data_sha256: str
    training_rows: int
    feedback_count: int = 0
    feedback_ids: list[str] = Field(default_factory=list)
    held_out_feedback_ids: list[str] = Field(
        default_factory=list, description="Corrections kept out of training to judge the gate."
    )
    gate: GateDecision | None = None


class ModelVersion(BaseModel):
    version: str
    created_at: datetime
    registered_at: datetime
    strategy: Strategy
    metrics: dict[str, dict[str, dict[str, float]]]
    lineage: Lineage
    champion: bool = False


class RegistryEvent(BaseModel):
    generation: int = Field(default=0, ge=0, description="The champion generation it made.")
    at: datetime
    action: Literal["promote", "rollback"]
    version: str
    previous_version: str | None
    reason: str


class ChampionPointer(BaseModel):
    """Which version serves: the registry's newest champion event."""

    version: str
    generation: int = Field(
        default=0, ge=0, description="Goes up by one with every promotion and rollback."
    )
    since: datetime
    reason: str
    previous: list[str] = Field(
        default_factory=list, description="Earlier champions, oldest first: what rollback restores."
    )

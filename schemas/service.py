"""What the service says about itself: liveness, readiness and the model that serves."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from schemas.checkpoint import BaseModelInfo
from schemas.config import Strategy


class Liveness(BaseModel):
    status: Literal["alive"] = "alive"


class Readiness(BaseModel):
    status: Literal["ready", "degraded"]
    source: Literal["tuned", "base"]
    reason: str | None = Field(
        default=None,
        description="Why the tuned specialist is not serving, as a code (`checkpoint_missing`); "
        "the full reason, which names paths, is for keys only: `GET /v1/models/active`.",
    )
    auth: Literal["enabled", "disabled"] = Field(
        default="enabled",
        description="'disabled' only in development (`claims serve --no-auth`): anyone may call.",
    )


class TunedModelInfo(BaseModel):
    model_version: str
    strategy: Strategy
    created_at: datetime
    checkpoint: str
    metrics: dict[str, dict[str, dict[str, float]]]


class ActiveModel(BaseModel):
    source: Literal["tuned", "base"]
    model_version: str
    fallback_reason: str | None
    base_model: BaseModelInfo
    tuned: TunedModelInfo | None
    tasks: dict[str, list[str]]
    policy_version: str
    registry_version: str | None = Field(description="The registry's champion that serves, if any.")
    follows_registry: bool = Field(
        description="False when a checkpoint folder is pinned: promotions are not followed."
    )
    serving_since: datetime = Field(description="When this model started answering.")
    reload_error: str | None = Field(
        default=None, description="Why the newest champion could not replace this model."
    )

"""Adjusters' corrections, and the predictions they correct."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schemas.claim import Claim, Printable, Storable
from schemas.triage import TriageResult

Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128), Printable
]
MAX_NOTE_CHARS = 4000


class FeedbackItem(BaseModel):
    """One adjuster's correction, as the client sends it; `feedback_id` makes a resend harmless."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    feedback_id: Identifier = Field(description="Chosen by the client: the same id is stored once.")
    prediction_id: Identifier | None = Field(
        default=None, description="The triage answer corrected; it names the claim."
    )
    claim_id: Identifier | None = Field(
        default=None, description="The claim corrected, where no prediction is referenced."
    )
    labels: dict[Identifier, Identifier] = Field(
        min_length=1, description="task -> the correct label"
    )
    reason_code: Annotated[str, StringConstraints(min_length=1, max_length=64), Printable]
    adjuster_id: Identifier
    note: Annotated[str, StringConstraints(max_length=MAX_NOTE_CHARS), Storable] | None = None
    confirmed: bool = Field(
        default=False,
        description="Whether the outcome is known for sure; only confirmed corrections train.",
    )

    @model_validator(mode="after")
    def _names_a_claim(self) -> FeedbackItem:
        if self.prediction_id is None and self.claim_id is None:
            raise ValueError("give prediction_id or claim_id: feedback must name what it corrects")
        return self


class FeedbackRecord(FeedbackItem):
    """A stored correction: the claim it resolves to, and when it arrived."""

    claim_id: Identifier
    model_version: str | None = Field(
        default=None, description="The version that made the corrected prediction, if one is named."
    )
    received_at: datetime


class FeedbackList(BaseModel):
    items: list[FeedbackRecord]


class PredictionRecord(BaseModel):
    """What was predicted, for whom, by which model: what feedback joins to."""

    prediction_id: str
    claim: Claim
    result: TriageResult
    model_version: str
    source: Literal["tuned", "base"]
    created_at: datetime

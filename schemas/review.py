"""The review queue: answers that need a person, who holds each, and one answer in full."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.claim import Claim
from schemas.feedback import FeedbackRecord, Identifier
from schemas.language import LanguageReading
from schemas.triage import ReviewReason, TriageResult

MAX_HOLD_MINUTES = 8 * 60  # a working day: past it, the claim goes back to the queue


class ReviewHold(BaseModel):
    """One adjuster works the claim until `until`; others see it as taken."""

    adjuster_id: str
    until: datetime


class ReviewQueueItem(BaseModel):
    prediction_id: str
    claim_id: str
    line_of_business: str | None
    route: str
    review_reasons: list[ReviewReason]
    tasks: list[str] = Field(description="The tasks whose low confidence asks for review.")
    model_version: str
    created_at: datetime
    held_by: ReviewHold | None = Field(description="Who works it now, if anyone.")
    language: LanguageReading | None = Field(
        default=None,
        description="The language the claim was read as; absent from answers recorded before "
        "the service read languages.",
    )


class ReviewQueue(BaseModel):
    items: list[ReviewQueueItem]
    total: int = Field(description="Items that match the filters, on every page.")
    limit: int
    offset: int


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    adjuster_id: Identifier
    minutes: int = Field(default=30, ge=1, le=MAX_HOLD_MINUTES)


class ReviewState(BaseModel):
    on_queue: bool = Field(description="Needs review and its claim has no confirmed feedback.")
    needs_review: bool
    held_by: ReviewHold | None


class PredictionDetail(BaseModel):
    """One stored answer with everything an adjuster needs to check it."""

    prediction_id: str
    claim: Claim
    result: TriageResult = Field(description="The answer as given, its explanation if any.")
    model_version: str
    policy_version: str
    source: str
    created_at: datetime
    review: ReviewState
    feedback: list[FeedbackRecord] = Field(description="Corrections of this claim, oldest first.")


class QueueCounts(BaseModel):
    """Open items by route and by age band, as the console's queue page shows them."""

    by_route: dict[str, int]
    by_age: dict[str, int]
    total: int

"""What the service answers for each claim: predictions, a decision, and who decided."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from schemas.claim import Claim
from schemas.explanation import Explanation
from schemas.language import LanguageReading

MAX_BATCH_CLAIMS = 256


class LabelProbability(BaseModel):
    label: str
    probability: float


class TaskPrediction(BaseModel):
    label: str = Field(
        description="The predicted label: the most probable, after per-label offsets tuned "
        "for macro-F1 on validation claims (a threshold, for a binary task)."
    )
    probability: float = Field(description="Its calibrated probability.")
    probabilities: dict[str, float] = Field(description="Every label's calibrated probability.")
    alternatives: list[LabelProbability] = Field(description="The next most probable labels.")


class ReviewReason(BaseModel):
    code: Literal["route", "low_confidence", "fallback_model"]
    detail: str
    task: str | None = Field(default=None, description="The task a low confidence is about.")


class Decision(BaseModel):
    route: str
    route_reason: str
    route_rule: int | None = Field(
        default=None,
        description="The policy's routing rule that chose the route, counted from 1; "
        "None: no rule applied and the default route was taken.",
    )
    needs_review: bool
    review_reasons: list[ReviewReason]
    policy_version: str


class ServedBy(BaseModel):
    source: Literal["tuned", "base"]
    model_version: str
    fallback_reason: str | None = Field(
        default=None, description="Why the base model answered instead of the tuned specialist."
    )


class TriageResult(BaseModel):
    prediction_id: str = Field(description="Names this answer in feedback: `POST /v1/feedback`.")
    claim_id: str
    predictions: dict[str, TaskPrediction]
    decision: Decision
    served_by: ServedBy
    language: LanguageReading | None = Field(
        default=None,
        description="The language the claim was read as; absent only from answers recorded "
        "before the service read languages.",
    )
    explanation: Explanation | None = Field(
        default=None,
        description="Why: always when the answer needs review, else when asked for "
        "(`?explain=true`). Only the tuned specialist's answers are explained.",
    )


class BatchTriageRequest(BaseModel):
    claims: Annotated[list[Claim], Field(min_length=1, max_length=MAX_BATCH_CLAIMS)]


class BatchTriageResponse(BaseModel):
    results: list[TriageResult]

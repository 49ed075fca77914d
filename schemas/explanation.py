"""Why an answer is what it is: per task, what raised and lowered the chosen label's
probability, and the decision's reasons in words."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PhraseFactor(BaseModel):
    """A phrase of the narrative: `start`/`end` index its characters."""

    text: str
    start: int
    end: int
    weight: float = Field(
        description="The chosen label's served probability minus its probability with this "
        "phrase removed: positive where the phrase raised it."
    )


class FieldFactor(BaseModel):
    """A structured field (or the narrative's word model) as the boosted and linear members
    read it."""

    field: str
    value: str | None = Field(description="The claim's value, as sent; None: missing.")
    weight: float = Field(
        description="Its exact contributions to the boosted and linear members' log-odds of the "
        "chosen label, each times that member's weight in the stack: its share of the served "
        "log-odds."
    )


class TaskExplanation(BaseModel):
    label: str
    probability: float
    phrases: list[PhraseFactor] = Field(
        description="The phrases that raised the label most, then those that lowered it most."
    )
    fields: list[FieldFactor] = Field(
        description="The fields that raised the label most, then those that lowered it most; "
        "empty when the model has no boosted or linear member."
    )
    summary: str = Field(description="The same in plain words.")


class Explanation(BaseModel):
    tasks: dict[str, TaskExplanation]
    reasons: list[str] = Field(
        description="The decision's reasons: the policy rule that routed, each review reason, "
        "and the factors behind them."
    )

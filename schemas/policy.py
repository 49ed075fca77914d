"""The decision policy: thresholds and rules as data, versioned and kept in the checkpoint.

Routing is a first-match list, so every claim gets exactly one route and no two rules can
contradict each other: a rule placed earlier (SIU) always wins over a later one (fast track).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class TaskCondition(BaseModel):
    """Holds when the summed probability of `labels` for `task` lies within the bounds."""

    model_config = ConfigDict(extra="forbid")

    task: str
    labels: list[str] = Field(min_length=1)
    min_probability: Probability | None = None
    max_probability: Probability | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> TaskCondition:
        if self.min_probability is None and self.max_probability is None:
            raise ValueError("a task condition needs min_probability or max_probability")
        return self


class FieldCondition(BaseModel):
    """Holds when a numeric claim field lies within the bounds; a missing value never holds."""

    model_config = ConfigDict(extra="forbid")

    field: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> FieldCondition:
        if self.min is None and self.max is None:
            raise ValueError("a field condition needs min or max")
        return self


Condition = TaskCondition | FieldCondition


class RouteRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    route: str = Field(min_length=1)
    reason: str = Field(min_length=1, description="Shown to the adjuster when this rule routes.")
    when: list[Condition] = Field(min_length=1, description="All must hold.")


class DecisionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = "1"
    routes: list[RouteRule] = Field(default_factory=list, description="First match wins.")
    default_route: str = "standard"
    review_routes: list[str] = Field(
        default_factory=list, description="Routes that always go to a human."
    )
    min_confidence: Probability = Field(
        default=0.5, description="Below this top-label probability a task asks for review."
    )
    review_on_fallback: bool = Field(
        default=True, description="Answers from the base model always go to a human."
    )

    @property
    def route_names(self) -> list[str]:
        return list(dict.fromkeys([rule.route for rule in self.routes] + [self.default_route]))

    @model_validator(mode="after")
    def _review_routes_exist(self) -> DecisionPolicy:
        unknown = sorted(set(self.review_routes) - set(self.route_names))
        if unknown:
            raise ValueError(f"review_routes: unknown routes {unknown}")
        return self


ReviewCode = Literal["route", "low_confidence", "fallback_model"]

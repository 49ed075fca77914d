"""A first notice of loss, as the API receives it and as training rows are read."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from schemas.language import LanguageTag

MAX_DESCRIPTION_CHARS = 20_000
MAX_ATTRIBUTE_CHARS = 1_000  # structured fields: a code, a name, an address, not a narrative
MAX_ATTRIBUTE_NAME_CHARS = 128


def _short_text(value: str | int | float | bool | None) -> str | int | float | bool | None:
    if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_CHARS:
        raise ValueError(
            f"{len(value):,} characters: an attribute holds at most {MAX_ATTRIBUTE_CHARS:,}"
        )
    return value


AttributeName = Annotated[str, StringConstraints(max_length=MAX_ATTRIBUTE_NAME_CHARS)]
AttributeValue = Annotated[
    str | int | float | bool | None,
    AfterValidator(_short_text),  # one error naming the attribute, not one per type it is not
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": MAX_ATTRIBUTE_CHARS},
                {"type": "integer"},
                {"type": "number"},
                {"type": "boolean"},
                {"type": "null"},
            ]
        }
    ),
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: str) -> str:
    """An identifier is printable text: a control character (NUL above all, which PostgreSQL
    cannot store) would fail its insert, and with it every claim recorded in the same
    transaction, or hide in logs and exports."""
    found = _CONTROL.search(value)
    if found is not None:
        raise ValueError(
            f"holds the control character U+{ord(found.group()):04X} at position "
            f"{found.start()}; identifiers are printable text"
        )
    return value


def storable(value: str) -> str:
    """Free text may hold tabs and line breaks, but not NUL, which PostgreSQL cannot store."""
    position = value.find("\x00")
    if position >= 0:
        raise ValueError(f"holds a NUL character (U+0000) at position {position}")
    return value


Printable = AfterValidator(printable)
Storable = AfterValidator(storable)


def _not_in_future(value: date) -> date:
    if value > datetime.now(UTC).date():
        raise ValueError(f"{value} is in the future")
    return value


KnownDate = Annotated[date, AfterValidator(_not_in_future)]


class Claim(BaseModel):
    """The fields an insurer knows when a claim is first reported."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    claim_id: Annotated[str, StringConstraints(min_length=1, max_length=128), Printable]
    description: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_DESCRIPTION_CHARS), Storable
    ] = Field(description="The loss narrative: the claimant's report or the adjuster's notes.")
    loss_date: KnownDate | None = None
    reported_date: KnownDate | None = None
    line_of_business: Annotated[str, StringConstraints(max_length=64), Printable] | None = None
    policy_id: Annotated[str, StringConstraints(max_length=128), Printable] | None = None
    policy_start_date: KnownDate | None = None
    initial_estimate: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    claimant_age: int | None = Field(default=None, ge=0, le=120)
    prior_claims: int | None = Field(default=None, ge=0, le=1000)
    channel: Annotated[str, StringConstraints(max_length=64), Printable] | None = None
    language: LanguageTag | None = Field(
        default=None,
        description="The narrative's language as an IETF BCP 47 tag ('pt-BR', 'pt-PT', 'en'); "
        "left out, it is detected from the narrative.",
    )
    attributes: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict,
        max_length=200,
        description="Further structured fields by name, e.g. those a training config maps; "
        f"a text value up to {MAX_ATTRIBUTE_CHARS:,} characters, a name up to "
        f"{MAX_ATTRIBUTE_NAME_CHARS}.",
    )

    @field_validator("reported_date")
    @classmethod
    def _reported_after_loss(cls, value: date | None, info: ValidationInfo) -> date | None:
        loss_date = info.data.get("loss_date")
        if value is not None and loss_date is not None and value < loss_date:
            raise ValueError(f"reported {value}, before the loss on {loss_date}")
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes_do_not_shadow_fields(
        cls, value: dict[str, AttributeValue]
    ) -> dict[str, AttributeValue]:
        shadowing = sorted(set(value) & set(cls.model_fields))
        if shadowing:
            raise ValueError(f"{shadowing} are claim fields: send them as fields, not attributes")
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes_are_storable(
        cls, value: dict[str, AttributeValue]
    ) -> dict[str, AttributeValue]:
        for name, item in value.items():
            try:
                printable(name)
            except ValueError as error:
                raise ValueError(f"the name {name!r} {error}") from None
            if isinstance(item, str):
                try:
                    storable(item)
                except ValueError as error:
                    raise ValueError(f"{name!r} {error}") from None
        return value

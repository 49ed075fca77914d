"""The language a claim is written in: as a client may give it, and as an answer reports it."""

from __future__ import annotations

from typing import Annotated, Literal

import langcodes
from pydantic import AfterValidator, BaseModel, Field, StringConstraints, WithJsonSchema

# RFC 5646 asks for room for tags of at least 35 characters; a longer one is refused, not cut.
LANGUAGE_TAG_CHARS = 35
UNDETERMINED = "und"  # the BCP 47 tag for a language that could not be told


def language_tag(value: str) -> str:
    """A BCP 47 tag whose subtags are registered, in its standard form: `pt_br` and `PT-br`
    become `pt-BR`, `por` becomes `pt`, so one language is stored and counted one way."""
    if not langcodes.tag_is_valid(value):
        raise ValueError(
            f"{value!r} is not a language tag: send an IETF BCP 47 tag such as 'pt', 'pt-BR', "
            "'pt-PT' or 'en'"
        )
    return str(langcodes.standardize_tag(value))


LanguageTag = Annotated[
    str,
    StringConstraints(min_length=1, max_length=LANGUAGE_TAG_CHARS),
    AfterValidator(language_tag),
    WithJsonSchema(  # the shape; which subtags are registered is beyond a JSON schema
        {
            "type": "string",
            "minLength": 1,
            "maxLength": LANGUAGE_TAG_CHARS,
            "pattern": r"^[A-Za-z0-9]{1,8}([-_][A-Za-z0-9]{1,8})*$",
            "examples": ["pt-BR", "pt-PT", "en"],
        }
    ),
]


class LanguageReading(BaseModel):
    """Which language the claim was read as, and who said so."""

    tag: str = Field(
        description="An IETF BCP 47 tag: the claim's own, standardised (`pt-BR`), or the "
        f"detected language (`pt`, `en`), or `{UNDETERMINED}` when the narrative was too short "
        "or too ambiguous to tell."
    )
    source: Literal["given", "detected"] = Field(
        description="`given`: the claim's `language` field; `detected`: read from its narrative."
    )

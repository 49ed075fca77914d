"""Which language a claim is written in: the one it gives, else the one its narrative reads as.

Detection is py3langid (BSD-3-Clause): naive Bayes over byte n-grams, whose model ships in the
wheel as LZMA-compressed NumPy arrays read with `allow_pickle=False`; nothing is downloaded and
nothing is unpickled. It chooses only among the languages a deployment expects (`languages`),
which keeps a Portuguese adjuster's shorthand from being read as Galician, and answers `und`
(undetermined) rather than guess:

- for a narrative of fewer than `MIN_WORDS` words (`ver anexo`, `REF 94065`), and
- when no language reaches `min_confidence` among those expected.

Its limits: it names a language, not a country (`pt`, never `pt-BR`); a claim in a language
outside `languages` is read as the nearest one inside it, often with high confidence (a Spanish
claim is `pt` when only English and Portuguese are expected), so list every language your claims
arrive in; upper-case codes and shorthand are `und` more often than prose; a narrative in two
languages is read as the one that dominates it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.claim import Claim
from schemas.language import UNDETERMINED, LanguageReading

DEFAULT_LANGUAGES = ("en", "pt", "es")  # English, Portuguese, and its likeliest confusion
MIN_CONFIDENCE = 0.8
MIN_WORDS = 3
_WORD = re.compile(r"[^\W\d_]{2,}")  # two letters or more: codes and numbers are not words


class LanguageDetector:
    """Reads each claim's language. The model is read by `load()` or on first use (the service
    loads it at start), once a process for each choice of languages and confidence; detecting is
    then safe from many threads."""

    def __init__(
        self, languages: Sequence[str] = DEFAULT_LANGUAGES, min_confidence: float = MIN_CONFIDENCE
    ) -> None:
        if not languages:
            raise ValueError("name at least one language to detect")
        if not 0 < min_confidence <= 1:
            raise ValueError(f"min_confidence must be in (0, 1], got {min_confidence}")
        self.languages = tuple(dict.fromkeys(languages))
        self.min_confidence = min_confidence

    def load(self) -> LanguageIdentifier:
        """Raises ValueError naming the languages the model does not know."""
        return _identifier(self.languages, self.min_confidence)

    def detect(self, text: str) -> str:
        """A language of `languages`, or `und` when the text is too short or too ambiguous."""
        if len(_WORD.findall(text)) < MIN_WORDS:
            return UNDETERMINED
        language, _ = self.load().classify(text)  # `und` below min_confidence
        return str(language)

    def read(self, claim: Claim) -> LanguageReading:
        """The claim's own language when it gives one; else its narrative's."""
        if claim.language is not None:
            return LanguageReading(tag=claim.language, source="given")
        return LanguageReading(tag=self.detect(claim.description), source="detected")


class LanguageSettings(BaseSettings):
    """How a claim that gives no language is read, from the same CLAIMS_* variables in the
    service and in `claims score`: a backlog is read as the service would read its claims."""

    model_config = SettingsConfigDict(env_prefix="CLAIMS_")

    detect_languages: list[str] = Field(
        default=list(DEFAULT_LANGUAGES),
        min_length=1,
        description="The languages a claim that gives none may be detected as (ISO 639-1 "
        "codes); list every language your claims arrive in, since a claim in another is read as "
        'the nearest of these. From the environment as JSON: CLAIMS_DETECT_LANGUAGES=\'["en", '
        '"pt"]\'.',
    )
    language_min_confidence: float = Field(
        default=MIN_CONFIDENCE,
        gt=0,
        le=1,
        description="Below this probability among `detect_languages`, a claim's language is "
        "`und` (undetermined), not a guess.",
    )

    def detector(self) -> LanguageDetector:
        return LanguageDetector(self.detect_languages, self.language_min_confidence)


@cache
def _identifier(languages: tuple[str, ...], min_confidence: float) -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(
        MODEL_FILE, norm_probs=True, min_confidence=min_confidence
    )
    unknown = sorted(set(languages) - set(identifier.labels))
    if unknown:
        raise ValueError(
            f"cannot detect {unknown}: the detector knows {', '.join(sorted(identifier.labels))}"
        )
    identifier.set_languages(list(languages))
    return identifier

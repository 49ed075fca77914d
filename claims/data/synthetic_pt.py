"""The Portuguese voice of the synthetic claims: `claims generate --language pt | mixed`.

The hidden story (type, damage, injury, amount, dates, SIU signals, labels) is drawn exactly as
for English by `claims.data.synthetic.generate_claims`; only the telling changes. Each Portuguese
claim is written in a Brazilian (pt-BR, in reais) or a European (pt-PT, in euros) voice, in the
same three registers as English (the claimant's account, the adjuster's shorthand, upper-case
codes), from the word tables in `claims/defaults/vocabulary_pt.toml`. A mixed file tells each
claim in English or Portuguese at random. The language draws come from a generator of their own,
so a seed gives the same stories and labels in every language.
"""

from __future__ import annotations

import random
import re
import tomllib
import unicodedata
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from claims.data.narrative_writing import Narrator, Story, TemplateWriter
from claims.data.synthetic import (
    CLAIM_TYPES,
    CONFUSER_RATE,
    SHARED_EVENT_RATE,
    _sentence_case,
)

LANGUAGES = ("en", "pt", "mixed")
LOCALES = ("pt-BR", "pt-PT")
LOCALE_SHARES = (0.6, 0.4)
MIXED_SHARES = {"en": 0.5, "pt-BR": 0.3, "pt-PT": 0.2}
CURRENCY = {"pt-BR": "BRL", "pt-PT": "EUR"}
USD_TO = {"BRL": 5.4, "EUR": 0.92}
_VARIANT = {"pt-BR": "br", "pt-PT": "pt"}
_WORD = re.compile(r"[^\W\d_]{4,}")


@cache
def vocabulary() -> dict[str, Any]:
    """The Portuguese word tables, read once from the package."""
    text = (resources.files("claims") / "defaults" / "vocabulary_pt.toml").read_text("utf-8")
    return tomllib.loads(text)


class LocalisedWriter:
    """Tells each claim in the language drawn for it: English through the English writer, and
    Portuguese in a Brazilian or a European voice; remembers each claim's locale for its money."""

    def __init__(self, english: Narrator, language: str, seed: int) -> None:
        if language not in LANGUAGES[1:]:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
        self.english = english
        self.portuguese = PortugueseWriter(random.Random(f"claims-pt-{seed}"))
        self.draw = random.Random(f"claims-language-{seed}")
        shares = dict(zip(LOCALES, LOCALE_SHARES, strict=True))
        self.shares = MIXED_SHARES if language == "mixed" else shares
        self.locales: list[str] = []

    def narrative(self, story: Story) -> str:
        (locale,) = self.draw.choices(list(self.shares), weights=list(self.shares.values()))
        self.locales.append(locale)
        if locale == "en":
            return self.english.narrative(story)
        return self.portuguese.narrative(locale, story)

    def local_money(
        self, estimate: np.ndarray, currency: np.ndarray, usd_to: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Portuguese claims' estimates in reais or euros: the same amount in dollars at the
        same noise, converted at the locale's rate; English claims keep theirs."""
        locales = np.array(self.locales)
        portuguese = locales != "en"
        local = np.array([CURRENCY.get(locale, "") for locale in locales], dtype=object)
        rate = np.array([USD_TO.get(code, 1.0) for code in local])
        converted = np.round(estimate / usd_to * rate, 2)
        return (
            np.where(portuguese, converted, estimate),
            np.where(portuguese, local, currency).astype(object),
        )


class PortugueseWriter(TemplateWriter):
    """Assembles one Portuguese narrative per claim, in the three registers of the English one."""

    def __init__(self, rnd: random.Random) -> None:
        super().__init__(rnd)
        self.words = vocabulary()
        self.variant = "br"

    def narrative(self, locale: str, story: Story) -> str:
        rnd, calendar, loss_day = self.rnd, self.words["calendar"], story.loss_day
        self.variant = _VARIANT[locale]
        self.known = {
            "dia": f"{loss_day.day} de {calendar['months'][loss_day.month - 1]}",
            "semana": calendar["weekdays"][loss_day.weekday()],
            "dol": loss_day.strftime("%d/%m/%y"),
            "dol_code": loss_day.strftime("%d%m%y"),
            "parte_lesado": rnd.choice(self.words["party"][CLAIM_TYPES[story.claim_type].story]),
        }
        # One body part per narrative: a broken bone is the sore one where that makes sense.
        part, bones = self._slot_value("parte"), self._slots("osso")
        self.known["parte"] = part
        self.known["osso"] = part if part in bones else rnd.choice(bones)
        if story.uninformative:
            return self.fill(rnd.choice(self.words["prose"]["uninformative"]))
        return self._written(story)

    # Slots ----------------------------------------------------------------------------------

    def _slots(self, name: str) -> list[str]:
        slots = self.words["slots"]
        return slots[self.variant].get(name) or slots["common"][name]

    def _slot_value(self, name: str) -> str:
        return self.rnd.choice(self._slots(name))

    # Registers ------------------------------------------------------------------------------

    def _event(self, claim_type: str, voice: str) -> str:
        shared = [g for g in self.words["shared_events"] if claim_type in g["types"]]
        if shared and voice != "third" and self.rnd.random() < SHARED_EVENT_RATE:
            return self._pick(self.rnd.choice(shared)[voice])
        return self._pick(self.words["events"][claim_type][voice])

    def _claimant(self, claim_type: str, damage: int, injury: int, inconsistent: bool) -> str:
        rnd, words, profile = self.rnd, self.words, CLAIM_TYPES[claim_type]
        prose = words["prose"]
        events = words["events"][claim_type]
        person = "third" if "third" in events and rnd.random() < 0.5 else "first"
        story = words["inconsistencies"][profile.story]["claimant"]
        early, late = rnd.choice(story) if inconsistent else ("", "")
        irrelevant = prose["irrelevant"]["any"] + prose["irrelevant"].get(claim_type, [])
        if person == "first":
            irrelevant = irrelevant + prose["irrelevant"][profile.line]
        chatter = [self.fill(line) for line in rnd.sample(irrelevant, rnd.choice(prose["chatter"]))]
        parts = [
            rnd.choice(prose["openings"]) if rnd.random() < 0.3 else "",
            self._slot_value("clima") + "." if rnd.random() < 0.2 else "",
            self._event(claim_type, "claimant" if person == "first" else "third"),
            self._pick(prose["when"]) if rnd.random() < 0.4 else "",
            self._pick(words["confusers"][claim_type]["claimant"])
            if rnd.random() < CONFUSER_RATE
            else "",
            self.fill(early),
            chatter.pop() if chatter and rnd.random() < 0.4 else "",
        ]
        if profile.damage and rnd.random() < 0.8:
            parts.append(self._pick(words["damage"][profile.damage]["claimant"][damage]))
        parts.append(self._injury_text(person, claim_type, injury))
        parts += chatter
        parts.append(self.fill(late))
        closings = prose["closings"]["any"] + prose["closings"][profile.line]
        parts.append(self._pick(closings) if rnd.random() < 0.5 else "")
        text = " ".join(_sentence_case(part) for part in parts if part)
        return text.lower() if rnd.random() < 0.04 else text

    def _adjuster(self, claim_type: str, damage: int, injury: int, inconsistent: bool) -> str:
        rnd, words, profile = self.rnd, self.words, CLAIM_TYPES[claim_type]
        dated = rnd.random()
        parts = [
            self.fill("{dol} -") if dated < 0.2 else "",
            self._event(claim_type, "adjuster"),
            self.fill("Data sinistro {dol}.") if 0.2 <= dated < 0.45 else "",
        ]
        if profile.damage and rnd.random() < 0.85:
            parts.append(self._pick(words["damage"][profile.damage]["adjuster"][damage]))
        parts.append(self._injury_text("adjuster", claim_type, injury))
        if rnd.random() < CONFUSER_RATE:
            parts.append(self._pick(words["confusers"][claim_type]["adjuster"]))
        if inconsistent:
            parts.append(self._pick(words["inconsistencies"][profile.story]["adjuster"]))
        admin = words["admin"]["adjuster"]["any"] + words["admin"]["adjuster"][profile.line]
        parts += [self.fill(note) for note in rnd.sample(admin, rnd.randint(1, 3))]
        return " ".join(_sentence_case(part) for part in parts if part)

    def _code(self, claim_type: str, damage: int, injury: int, inconsistent: bool) -> str:
        rnd, words, profile = self.rnd, self.words, CLAIM_TYPES[claim_type]
        parts = [self._event(claim_type, "code")]
        if profile.damage and rnd.random() < 0.7:
            parts.append(rnd.choice(words["damage"][profile.damage]["code"][damage]))
        parts.append(self._injury_text("code", claim_type, injury))
        if inconsistent:
            parts.append(rnd.choice(words["inconsistencies"][profile.story]["code"]))
        admin = words["admin"]["code"]["any"] + words["admin"]["code"][profile.line]
        parts += rnd.sample(admin, rnd.randint(0, 2))
        if rnd.random() < 0.4:
            parts.append(self._pick(["DATA {dol_code}", "DATA {dol}", "REF {num}"]))
        separator = rnd.choice((" - ", " - ", " / ", "; ", ", "))
        return separator.join(part for part in parts if part).upper()

    def _injury_text(self, writer: str, claim_type: str, injury: int) -> str:
        """As in English: often negated when there is none, sometimes vague or left out."""
        rnd, words = self.rnd, self.words
        if injury == 0:
            mention = 0.7 if claim_type == "collision" else 0.15
            return self._pick(words["injury"][writer][0]) if rnd.random() < mention else ""
        roll = rnd.random()
        typical = words["minor_injury_by_type"].get(claim_type, {}).get(writer)
        if injury == 1 and typical and roll < 0.5:
            return self._pick(typical)
        if roll < 0.85:
            return self._pick(words["injury"][writer][injury])
        return self._pick(words["vague_injury"][writer]) if roll < 0.93 else ""

    def _typos(self, text: str) -> str:
        """Half the time the accents go, as people type on a phone; else ~5% of words lose or
        swap a letter."""
        if self.rnd.random() < 0.5:
            decomposed = unicodedata.normalize("NFD", text)
            return "".join(c for c in decomposed if not unicodedata.combining(c))

        def corrupt(match: re.Match[str]) -> str:
            word = match.group(0)
            return self._slipped(word)

        return _WORD.sub(corrupt, text)

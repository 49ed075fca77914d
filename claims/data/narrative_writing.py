"""What the synthetic narratives of every language share: templates whose slots are filled from
what the narrative has already said (one body part, one date) or at random, three registers
(the claimant's account, the adjuster's shorthand, the codes), and now and then a typing slip."""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date
from typing import Protocol

TYPO_RATE = 0.10  # of narratives with slips in them
TYPO_WORD_RATE = 0.05  # of the words of such a narrative that slip
MAX_NARRATIVE_CHARS = 1500
SLOT = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Story:
    """What a claim's narrative tells, drawn before it is written in any voice or language."""

    claim_type: str
    voice: str  # claimant, adjuster or code
    damage: int  # 0 minor, 1 moderate, 2 major
    injury: int  # 0 none to 3 serious
    inconsistent: bool
    uninformative: bool
    loss_day: date


class Narrator(Protocol):
    def narrative(self, story: Story) -> str: ...


class TemplateWriter(ABC):
    """Fills templates for one narrative at a time; a language's writer says where a slot's
    words come from (`_slot_value`) and writes the three registers."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.known: dict[str, str] = {}  # slots this narrative has already filled

    def fill(self, template: str) -> str:
        while "{" in template:
            template = SLOT.sub(self._slot, template)
        return template

    def _slot(self, match: re.Match[str]) -> str:
        name = match.group(1)
        if name in self.known:
            return self.known[name]
        if name == "num":
            return str(self.rnd.randint(1000, 99999))
        return self._slot_value(name)

    @abstractmethod
    def _slot_value(self, name: str) -> str: ...

    def _pick(self, options: tuple[str, ...] | list[str]) -> str:
        return self.fill(self.rnd.choice(options))

    def _written(self, story: Story) -> str:
        """The narrative in its voice's register, with slips in TYPO_RATE of them."""
        registers = {"claimant": self._claimant, "adjuster": self._adjuster, "code": self._code}
        text = registers[story.voice](
            story.claim_type, story.damage, story.injury, story.inconsistent
        )
        if self.rnd.random() < TYPO_RATE:
            text = self._typos(text)
        return text[:MAX_NARRATIVE_CHARS]

    @abstractmethod
    def _claimant(self, claim_type: str, damage: int, injury: int, inconsistent: bool) -> str: ...

    @abstractmethod
    def _adjuster(self, claim_type: str, damage: int, injury: int, inconsistent: bool) -> str: ...

    @abstractmethod
    def _code(self, claim_type: str, damage: int, injury: int, inconsistent: bool) -> str: ...

    @abstractmethod
    def _typos(self, text: str) -> str: ...

    def _slipped(self, word: str) -> str:
        """The word, or in TYPO_WORD_RATE of cases the word with a letter swapped or lost."""
        if self.rnd.random() >= TYPO_WORD_RATE:
            return word
        i = self.rnd.randrange(1, len(word) - 1)
        if self.rnd.random() < 0.5:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        return word[:i] + word[i + 1 :]

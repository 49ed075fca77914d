"""Synthetic first-notice-of-loss claims: the embedded default data set for the demo and the tests.

Each claim is drawn from a hidden story, so that the labels are learnable but never trivial:

1. A true claim type (by base rate), a damage extent (minor / moderate / major) and an injury
   level (none / minor / serious / hospitalised), each from type-specific probabilities.
2. A true loss amount, lognormal around the type's median and pushed up by damage and injury.
   ``initial_estimate`` is a noisy view of it in the claim's currency; 5% are 0.0 (not yet
   estimated).
3. A latent severity score from the damage and injury cues plus the log amount, bucketed at fixed
   thresholds, so a model needs both the narrative and the structured fields.
4. An SIU referral from a logistic of weak signals together: short policy tenure, late reporting,
   an inconsistent story, an amount high for the type, prior claims and theft-prone types.
5. A narrative in one of three voices (claimant, adjuster shorthand, legacy upper-case codes) that
   mentions the cues most of the time, with synonyms, negations, typos and irrelevant detail.
6. Label noise: 3% of claim types, 4% of severities and 0.5% of SIU flags are replaced.

All dates lie in 2021-01-01..2025-10-31 whatever today is. docs/synthetic-data.md has the rules.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from claims.data.narrative_writing import SLOT, Narrator, Story, TemplateWriter

FIRST_DAY = np.datetime64("2021-01-01")
LAST_DAY = np.datetime64("2025-10-31")

SEVERITIES = ("low", "medium", "high", "severe")
# Severity score cut points, calibrated once on 400,000 rows for roughly 45/30/18/7 %.
SEVERITY_THRESHOLDS = (0.90, 1.89, 2.93)
LINES = ("auto", "property", "liability", "workers_comp")
REGIONS = ("north", "south", "east", "west", "central")
REGION_SHARES = (0.20, 0.22, 0.20, 0.22, 0.16)
STORM_REGION_SHARES = (0.12, 0.34, 0.26, 0.14, 0.14)
# Log-amount shift by region: repair costs differ a little (a weak signal).
REGION_COST = (0.0, -0.05, 0.08, 0.12, -0.10)
CURRENCIES = ("USD", "EUR", "GBP", "CAD")
CURRENCY_SHARES = (0.82, 0.07, 0.06, 0.05)
USD_TO = (1.0, 0.92, 0.79, 1.37)
CHANNELS = ("phone", "web", "agent", "mobile_app", "email")
VOICES = ("claimant", "adjuster", "code")
VOICE_SHARES = (0.45, 0.35, 0.20)
# Who files in which voice: claimants use the web and the app, adjusters and agents the phone.
CHANNEL_SHARES_BY_VOICE = {
    "claimant": (0.22, 0.30, 0.05, 0.33, 0.10),
    "adjuster": (0.60, 0.05, 0.30, 0.02, 0.03),
    "code": (0.55, 0.05, 0.35, 0.00, 0.05),
}
POLICY_PREFIX = {"auto": "AU", "property": "HO", "liability": "GL", "workers_comp": "WC"}
AGE_RANGE = {
    "auto": (16, 92),
    "property": (18, 95),
    "liability": (16, 95),
    "workers_comp": (18, 70),
}

UNINFORMATIVE_RATE = 0.03
ZERO_ESTIMATE_RATE = 0.05
SHORT_TENURE_RATE = 0.08
SHORT_TENURE_DAYS = 60
LATE_REPORT_DAYS = 30
INCONSISTENT_RATE = 0.06
CONFUSER_RATE = 0.15
SHARED_EVENT_RATE = 0.15
TYPE_NOISE, SEVERITY_NOISE, SIU_NOISE = 0.03, 0.04, 0.005

# The SIU logistic: log-odds = intercept + sum of weight * signal.
SIU_INTERCEPT = -4.4
SIU_WEIGHTS = {
    "short_tenure": 1.6,
    "late_report": 1.3,
    "inconsistent": 1.9,
    "high_amount": 1.1,
    "prior_claims": 0.3,  # per prior claim, counted up to 6
    "prone_type": 0.6,  # vehicle theft, fire, burglary
}
HIGH_AMOUNT_LOG_EXCESS = 0.75  # amount more than e^0.75 = 2.1 times what type and cues predict


@dataclass(frozen=True)
class ClaimTypeProfile:
    """How one claim type behaves in the hidden story."""

    line: str
    share: float
    median_usd: float  # true loss with no damage or injury cue
    damage: str | None  # damage vocabulary; None where only injuries count
    story: str  # vocabulary for inconsistencies and the injured party
    damage_p: tuple[float, float, float]  # minor, moderate, major
    injury_p: tuple[float, float, float, float]  # none, minor, serious, hospitalised
    severity_shift: float
    late_rate: float  # chance of a report more than 30 days after the loss
    siu_prone: bool = False


# fmt: off
CLAIM_TYPES: dict[str, ClaimTypeProfile] = {
    "collision": ClaimTypeProfile("auto", 0.22, 3500, "vehicle", "auto",
                                  (0.45, 0.40, 0.15), (0.68, 0.22, 0.07, 0.03), 0.0, 0.04),
    "vehicle_theft": ClaimTypeProfile("auto", 0.05, 9000, "theft", "theft",
                                      (0.25, 0.30, 0.45), (1, 0, 0, 0), 0.0, 0.06, True),
    "glass_damage": ClaimTypeProfile("auto", 0.08, 450, "glass", "auto",
                                     (0.55, 0.40, 0.05), (1, 0, 0, 0), -0.3, 0.05),
    "water_damage": ClaimTypeProfile("property", 0.18, 5000, "water", "property",
                                     (0.45, 0.40, 0.15), (0.99, 0.01, 0, 0), 0.0, 0.08),
    "fire": ClaimTypeProfile("property", 0.03, 20000, "fire", "contents",
                             (0.30, 0.45, 0.25), (0.85, 0.09, 0.04, 0.02), 0.3, 0.03, True),
    "storm": ClaimTypeProfile("property", 0.09, 7000, "storm", "property",
                              (0.45, 0.40, 0.15), (0.97, 0.02, 0.01, 0), 0.0, 0.07),
    "burglary": ClaimTypeProfile("property", 0.06, 3500, "burglary", "contents",
                                 (0.45, 0.40, 0.15), (0.98, 0.02, 0, 0), 0.0, 0.04, True),
    "slip_and_fall": ClaimTypeProfile("liability", 0.08, 9000, None, "injury",
                                      (1, 0, 0), (0, 0.50, 0.35, 0.15), -0.4, 0.12),
    "dog_bite": ClaimTypeProfile("liability", 0.03, 5000, None, "injury",
                                 (1, 0, 0), (0, 0.60, 0.32, 0.08), -0.4, 0.10),
    "workplace_injury": ClaimTypeProfile("workers_comp", 0.12, 7000, None, "work",
                                         (1, 0, 0), (0, 0.45, 0.37, 0.18), -0.4, 0.08),
    "repetitive_strain": ClaimTypeProfile("workers_comp", 0.06, 8000, None, "work",
                                          (1, 0, 0), (0, 0.65, 0.30, 0.05), -0.4, 0.30),
}
TYPE_NAMES = tuple(CLAIM_TYPES)

# How many sentences of irrelevant detail a claimant adds, drawn uniformly from this list.
CHATTER = (0, 1, 1, 2, 2, 3, 4, 6, 8)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

COLUMNS = (
    "claim_id", "description", "loss_date", "reported_date", "line_of_business", "policy_id",
    "policy_start_date", "initial_estimate", "currency", "claimant_age", "prior_claims",
    "channel", "region", "claim_type", "severity", "siu_referral",
)
# fmt: on

_WORD = re.compile(r"[A-Za-z]{4,}")


Phrases = tuple[str, ...]
ByVoice = dict[str, Phrases]
# Placeholders the claim itself fills; every other {name} must be a slot.
CLAIM_SLOTS = frozenset({"month_day", "weekday", "dol", "dol_code", "party", "num"})


class Vocabulary(BaseModel):
    """The words narratives are written from, kept as data in synthetic_words.json.

    `{slot}` placeholders are filled from `slots` (recursively), or from the claim itself:
    {month_day}, {weekday}, {dol} (03/14/24), {dol_code} (031424), {party} (the injured person
    in adjuster notes) and {body_part} / {bone}, fixed per narrative; {num} is a reference number.
    Checked on load, so a table that misses a claim type fails here, not in the middle of a run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    slots: dict[str, Phrases]
    party: dict[str, Phrases] = Field(description="The injured person as adjusters write it.")
    events: dict[str, ByVoice] = Field(
        description="What happened, by claim type and voice; 'third' is the insured telling of "
        "someone else's injury."
    )
    shared_events: tuple[ByVoice, ...] = Field(
        description="Events told the same way for the claim types in 'types': the text alone "
        "cannot tell them apart."
    )
    damage: dict[str, dict[str, tuple[Phrases, Phrases, Phrases]]] = Field(
        description="Damage extent by vocabulary and voice: minor, moderate, major."
    )
    injury: dict[str, tuple[Phrases, Phrases, Phrases, Phrases]] = Field(
        description="Injury by writer ('first' about themself, 'third' about someone else): none "
        "(negated cue words), minor, serious, hospitalised."
    )
    minor_injury_by_type: dict[str, ByVoice] = Field(
        description="Minor injuries typical of a claim type, said instead of `injury` half the "
        "time."
    )
    vague_injury: ByVoice = Field(description="An injury said without its extent.")
    inconsistencies: dict[str, dict[str, tuple[tuple[str, str], ...] | Phrases]] = Field(
        description="An inconsistent story, by story: claimant pairs (said early, contradicted "
        "later), and single notes in the adjuster and code voices."
    )
    confusers: dict[str, ByVoice] = Field(
        description="Sentences that point at a neighbouring claim type."
    )
    openings: Phrases
    when: Phrases
    irrelevant: dict[str, Phrases] = Field(
        description="Detail that says nothing about the type or severity, by line of business "
        "(and for collisions)."
    )
    closings: dict[str, Phrases]
    admin: dict[str, dict[str, Phrases]] = Field(description="File notes, by voice and line.")
    uninformative: Phrases
    misspellings: dict[str, str]

    def inconsistent_notes(self, story: str, voice: str) -> Phrases:
        """The single notes of an inconsistent story, in the adjuster's or the code voice."""
        return tuple(note for note in self.inconsistencies[story][voice] if isinstance(note, str))

    @model_validator(mode="after")
    def _covers_every_claim_type(self) -> Vocabulary:
        """Every table the generator indexes has an entry for every claim type, story and line."""
        profiles = CLAIM_TYPES.values()
        lines = {"any"} | {profile.line for profile in profiles}
        wanted: dict[str, tuple[set[str], Mapping[str, object]]] = {
            "events": (set(TYPE_NAMES), self.events),
            "confusers": (set(TYPE_NAMES), self.confusers),
            "party": ({profile.story for profile in profiles}, self.party),
            "inconsistencies": ({profile.story for profile in profiles}, self.inconsistencies),
            "damage": (
                {p.damage for p in profiles if p.damage is not None},
                self.damage,
            ),
            "irrelevant": (lines, self.irrelevant),
            "closings": (lines, self.closings),
            "admin.adjuster": (lines, self.admin.get("adjuster", {})),
            "admin.code": (lines, self.admin.get("code", {})),
        }
        for table, (keys, entries) in wanted.items():
            if missing := sorted(keys - set(entries)):
                raise ValueError(f"{table} has no entry for {', '.join(missing)}")
        placeholders = set(SLOT.findall(self.model_dump_json()))
        if unknown := sorted(placeholders - CLAIM_SLOTS - set(self.slots)):
            raise ValueError(f"no slot for placeholder {', '.join(unknown)}")
        if missing := sorted({"body_part", "bone"} - set(self.slots)):
            raise ValueError(f"slots has no entry for {', '.join(missing)}")
        return self


def load_vocabulary() -> Vocabulary:
    """The word tables shipped as package data, validated."""
    words = resources.files("claims.data").joinpath("synthetic_words.json")
    return Vocabulary.model_validate_json(words.read_text(encoding="utf-8"))


WORDS = load_vocabulary()
SHARED_EVENTS_BY_TYPE = {
    name: tuple(group for group in WORDS.shared_events if name in group["types"])
    for name in TYPE_NAMES
}


def generate_claims(n: int, seed: int = 0, language: str = "en") -> pd.DataFrame:
    """``n`` synthetic claims with labels; the same ``(n, seed)`` always gives the same frame.

    ``language`` "pt" tells the same stories in Portuguese (Brazil or Portugal), "mixed" each in
    English or Portuguese; see claims/data/synthetic_pt.py."""
    return generate_claims_with_truth(n, seed, language)[0]


def generate_claims_with_truth(
    n: int, seed: int = 0, language: str = "en"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The claims of ``generate_claims`` and, row for row, what the hidden story knew before
    its last random draws: the true claim type, the severity band its score falls in, and the
    probability the SIU referral was drawn with. No model sees more, so scored against the
    labels these are the ceiling a benchmark on these claims can show
    (benchmarks/synthetic_ceiling.py)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    profiles = [CLAIM_TYPES[name] for name in TYPE_NAMES]

    kind = rng.choice(len(profiles), size=n, p=[profile.share for profile in profiles])

    def per_type(attribute: str) -> np.ndarray:
        """Each claim's value of a ClaimTypeProfile attribute, by its true type."""
        return np.array([getattr(profile, attribute) for profile in profiles])[kind]

    damage = _categorical(rng, per_type("damage_p"))
    injury = _categorical(rng, per_type("injury_p"))
    region = np.where(
        kind == TYPE_NAMES.index("storm"),
        rng.choice(len(REGIONS), size=n, p=STORM_REGION_SHARES),
        rng.choice(len(REGIONS), size=n, p=REGION_SHARES),
    )

    # True amount: lognormal around the type median, pushed up by the cues and the region.
    cue = 0.9 * damage + 0.9 * injury
    amount_noise = rng.normal(0.0, 0.6, n)
    log_ratio = 0.6 * cue + amount_noise + np.array(REGION_COST)[region]
    amount_usd = per_type("median_usd") * np.exp(log_ratio)
    severity_score = 0.8 * cue + 0.8 * log_ratio + per_type("severity_shift")
    severity = np.searchsorted(SEVERITY_THRESHOLDS, severity_score + rng.normal(0.0, 0.3, n))

    # Dates: the reporting lag first, so that the report still falls inside the fixed window.
    late = rng.random(n) < per_type("late_rate")
    lag = np.where(
        late,
        rng.integers(LATE_REPORT_DAYS + 1, 181, n),
        np.minimum(rng.exponential(2.5, n).astype(np.int64), LATE_REPORT_DAYS),
    )
    span = int((LAST_DAY - FIRST_DAY).astype(np.int64))
    loss = FIRST_DAY + (rng.random(n) * (span - lag + 1)).astype(np.int64).astype("timedelta64[D]")
    reported = loss + lag.astype("timedelta64[D]")
    short = rng.random(n) < SHORT_TENURE_RATE
    tenure = np.where(
        short,
        rng.integers(2, SHORT_TENURE_DAYS + 1, n),
        np.minimum(SHORT_TENURE_DAYS + 1 + np.exp(rng.normal(6.3, 0.9, n)), 6000).astype(np.int64),
    )
    policy_start = loss - tenure.astype("timedelta64[D]")

    prior = rng.poisson(np.where(rng.random(n) < 0.06, 2.8, 0.35)).astype(np.int64)
    inconsistent = rng.random(n) < INCONSISTENT_RATE
    siu_logit = (
        SIU_INTERCEPT
        + SIU_WEIGHTS["short_tenure"] * short
        + SIU_WEIGHTS["late_report"] * late
        + SIU_WEIGHTS["inconsistent"] * inconsistent
        + SIU_WEIGHTS["high_amount"] * (amount_noise > HIGH_AMOUNT_LOG_EXCESS)
        + SIU_WEIGHTS["prior_claims"] * np.minimum(prior, 6)
        + SIU_WEIGHTS["prone_type"] * per_type("siu_prone")
    )
    siu_probability = 1.0 / (1.0 + np.exp(-siu_logit))
    siu = (rng.random(n) < siu_probability).astype(np.int64)

    currency = rng.choice(len(CURRENCIES), size=n, p=CURRENCY_SHARES)
    estimate = amount_usd * np.exp(rng.normal(0.0, 0.3, n)) * np.array(USD_TO)[currency]
    estimate = np.where(rng.random(n) < ZERO_ESTIMATE_RATE, 0.0, np.round(estimate, 2))
    line = np.array([LINES.index(profile.line) for profile in profiles])[kind]
    low_age, high_age = (np.array([AGE_RANGE[name][end] for name in LINES])[line] for end in (0, 1))
    age = np.clip(np.rint(rng.normal(46, 16, n)), low_age, high_age).astype(np.int64)
    voice = rng.choice(len(VOICES), size=n, p=VOICE_SHARES)
    channel = _categorical(rng, np.array([CHANNEL_SHARES_BY_VOICE[v] for v in VOICES])[voice])
    policy_number = rng.integers(10_000_000, 100_000_000, n)

    # Label noise: each replacement is a different value, so the rates are the error rates.
    label_kind = _replace_some(rng, kind, len(TYPE_NAMES), TYPE_NOISE)
    label_severity = _replace_some(rng, severity, len(SEVERITIES), SEVERITY_NOISE)
    label_siu = _replace_some(rng, siu, 2, SIU_NOISE)

    uninformative = rng.random(n) < UNINFORMATIVE_RATE
    writer: Narrator = _NarrativeWriter(random.Random(int(rng.integers(2**63))))
    localised = None
    if language != "en":
        from claims.data.synthetic_pt import LocalisedWriter  # it imports this module

        writer = localised = LocalisedWriter(writer, language, seed)
    loss_days = loss.astype(object)
    descriptions = np.array(
        [
            writer.narrative(
                Story(
                    TYPE_NAMES[kind[i]],
                    VOICES[voice[i]],
                    int(damage[i]),
                    int(injury[i]),
                    bool(inconsistent[i]),
                    bool(uninformative[i]),
                    loss_days[i],
                )
            )
            for i in range(n)
        ],
        dtype=object,
    )

    currency_names = np.array(CURRENCIES, dtype=object)[currency]
    if localised is not None:
        estimate, currency_names = localised.local_money(
            estimate, currency_names, np.array(USD_TO)[currency]
        )

    # Claim numbers follow the order the claims were reported in, as a claims system issues them.
    order = np.lexsort((np.arange(n), loss, reported))
    line_names = np.array(LINES)[line[order]]
    claim_ids = [f"CLM-{number:07d}" for number in range(1, n + 1)]
    claims = pd.DataFrame(
        {
            "claim_id": claim_ids,
            "description": descriptions[order],
            "loss_date": np.datetime_as_string(loss[order]),
            "reported_date": np.datetime_as_string(reported[order]),
            "line_of_business": line_names,
            "policy_id": [
                f"{POLICY_PREFIX[name]}-{number}"
                for name, number in zip(line_names, policy_number[order], strict=True)
            ],
            "policy_start_date": np.datetime_as_string(policy_start[order]),
            "initial_estimate": estimate[order],
            "currency": currency_names[order],
            "claimant_age": age[order],
            "prior_claims": prior[order],
            "channel": np.array(CHANNELS)[channel[order]],
            "region": np.array(REGIONS)[region[order]],
            "claim_type": np.array(TYPE_NAMES)[label_kind[order]],
            "severity": np.array(SEVERITIES)[label_severity[order]],
            "siu_referral": label_siu[order],
        },
        columns=list(COLUMNS),
    )
    truth = pd.DataFrame(
        {
            "claim_id": claim_ids,
            "claim_type": np.array(TYPE_NAMES)[kind[order]],
            "severity": np.array(SEVERITIES)[
                np.searchsorted(SEVERITY_THRESHOLDS, severity_score[order])
            ],
            "siu_referral": siu_probability[order],
        }
    )
    return claims, truth


def _categorical(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One draw per row, each from that row's probabilities."""
    cumulative = np.cumsum(probabilities, axis=1)
    draws = rng.random(len(probabilities))[:, None] * cumulative[:, -1:]
    return np.minimum((draws >= cumulative).sum(axis=1), probabilities.shape[1] - 1)


def _replace_some(rng: np.random.Generator, values: np.ndarray, k: int, rate: float) -> np.ndarray:
    """Replace a ``rate`` share of values, each by a different one of the ``k`` values."""
    replaced = rng.random(len(values)) < rate
    shift = rng.integers(1, k, len(values))
    return np.where(replaced, (values + shift) % k, values)


class _NarrativeWriter(TemplateWriter):
    """Assembles one narrative per claim from the vocabulary tables."""

    def narrative(self, story: Story) -> str:
        rnd, loss_day = self.rnd, story.loss_day
        self.known = {
            "month_day": f"{MONTHS[loss_day.month - 1]} {_ordinal(loss_day.day)}",
            "weekday": WEEKDAYS[loss_day.weekday()],
            "dol": loss_day.strftime("%m/%d/%y"),
            "dol_code": loss_day.strftime("%m%d%y"),
            "party": rnd.choice(WORDS.party[CLAIM_TYPES[story.claim_type].story]),
            "body_part": rnd.choice(WORDS.slots["body_part"]),
        }
        # One body part per narrative: a broken bone is the sore one where that makes sense.
        part = self.known["body_part"]
        self.known["bone"] = (
            part if part in WORDS.slots["bone"] else rnd.choice(WORDS.slots["bone"])
        )
        if story.uninformative:
            return self.fill(rnd.choice(WORDS.uninformative))
        return self._written(story)

    def _slot_value(self, name: str) -> str:
        return self.rnd.choice(WORDS.slots[name])

    def _event(self, claim_type: str, voice: str) -> str:
        """What happened: now and then told as for a neighbouring claim type."""
        shared = SHARED_EVENTS_BY_TYPE[claim_type]
        if shared and voice != "third" and self.rnd.random() < SHARED_EVENT_RATE:
            return self._pick(self.rnd.choice(shared)[voice])
        return self._pick(WORDS.events[claim_type][voice])

    def _claimant(self, claim_type: str, damage: int, injury: int, inconsistent: bool) -> str:
        rnd, profile = self.rnd, CLAIM_TYPES[claim_type]
        person = "third" if "third" in WORDS.events[claim_type] and rnd.random() < 0.5 else "first"
        story = WORDS.inconsistencies[profile.story]["claimant"]
        early, late = rnd.choice(story) if inconsistent else ("", "")
        irrelevant = WORDS.irrelevant["any"] + WORDS.irrelevant.get(claim_type, ())
        if person == "first":  # line-specific chatter is about the claimant's own experience
            irrelevant += WORDS.irrelevant[profile.line]
        chatter = [self.fill(line) for line in rnd.sample(irrelevant, rnd.choice(CHATTER))]
        parts = [
            rnd.choice(WORDS.openings) if rnd.random() < 0.3 else "",
            rnd.choice(WORDS.slots["weather"]) + "." if rnd.random() < 0.2 else "",
            self._event(claim_type, "claimant" if person == "first" else "third"),
            self._pick(WORDS.when) if rnd.random() < 0.4 else "",
            self._pick(WORDS.confusers[claim_type]["claimant"])
            if rnd.random() < CONFUSER_RATE
            else "",
            early,
            chatter.pop() if chatter and rnd.random() < 0.4 else "",
        ]
        if profile.damage and rnd.random() < 0.8:
            parts.append(self._pick(WORDS.damage[profile.damage]["claimant"][damage]))
        parts.append(self._injury_text(person, claim_type, injury))
        parts += chatter
        parts.append(late)
        closings = WORDS.closings["any"] + WORDS.closings[profile.line]
        parts.append(self._pick(closings) if rnd.random() < 0.5 else "")
        text = " ".join(_sentence_case(part) for part in parts if part)
        return text.lower() if rnd.random() < 0.04 else text

    def _adjuster(self, claim_type: str, damage: int, injury: int, inconsistent: bool) -> str:
        rnd, profile = self.rnd, CLAIM_TYPES[claim_type]
        dated = rnd.random()
        parts = [
            self.fill("{dol} -") if dated < 0.2 else "",
            self._event(claim_type, "adjuster"),
            self.fill("DOL {dol}.") if 0.2 <= dated < 0.45 else "",
        ]
        if profile.damage and rnd.random() < 0.85:
            parts.append(self._pick(WORDS.damage[profile.damage]["adjuster"][damage]))
        parts.append(self._injury_text("adjuster", claim_type, injury))
        if rnd.random() < CONFUSER_RATE:
            parts.append(self._pick(WORDS.confusers[claim_type]["adjuster"]))
        if inconsistent:
            parts.append(rnd.choice(WORDS.inconsistent_notes(profile.story, "adjuster")))
        admin = WORDS.admin["adjuster"]["any"] + WORDS.admin["adjuster"][profile.line]
        parts += [self.fill(note) for note in rnd.sample(admin, rnd.randint(1, 3))]
        return " ".join(_sentence_case(part) for part in parts if part)

    def _code(self, claim_type: str, damage: int, injury: int, inconsistent: bool) -> str:
        rnd, profile = self.rnd, CLAIM_TYPES[claim_type]
        parts = [self._event(claim_type, "code")]
        if profile.damage and rnd.random() < 0.7:
            parts.append(rnd.choice(WORDS.damage[profile.damage]["code"][damage]))
        parts.append(self._injury_text("code", claim_type, injury))
        if inconsistent:
            parts.append(rnd.choice(WORDS.inconsistent_notes(profile.story, "code")))
        admin = WORDS.admin["code"]["any"] + WORDS.admin["code"][profile.line]
        parts += rnd.sample(admin, rnd.randint(0, 2))
        if rnd.random() < 0.4:
            parts.append(self._pick(("DOL {dol_code}", "DOL {dol}", "REF {num}")))
        separator = rnd.choice((" - ", " - ", " / ", "; ", ", "))
        return separator.join(part for part in parts if part).upper()

    def _injury_text(self, writer: str, claim_type: str, injury: int) -> str:
        """The injury cue: often negated when there is none, sometimes vague or left out."""
        rnd = self.rnd
        if injury == 0:
            mention = 0.7 if claim_type == "collision" else 0.15
            return self._pick(WORDS.injury[writer][0]) if rnd.random() < mention else ""
        roll = rnd.random()
        typical = WORDS.minor_injury_by_type.get(claim_type, {}).get(writer)
        if injury == 1 and typical and roll < 0.5:
            return self._pick(typical)
        if roll < 0.85:
            return self._pick(WORDS.injury[writer][injury])
        return self._pick(WORDS.vague_injury[writer]) if roll < 0.93 else ""

    def _typos(self, text: str) -> str:
        """Misspell half the usual suspects and ~5% of other words (letters swapped or lost)."""

        def corrupt(match: re.Match[str]) -> str:
            word = match.group(0)
            if word.lower() in WORDS.misspellings and self.rnd.random() < 0.5:
                wrong = WORDS.misspellings[word.lower()]
                return wrong.upper() if word.isupper() else word[0] + wrong[1:]
            return self._slipped(word)

        return _WORD.sub(corrupt, text)


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"

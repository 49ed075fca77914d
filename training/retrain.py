"""Retraining from adjusters' confirmed corrections, judged before it can serve.

The historical claims plus every confirmed correction (the newest per claim and task wins)
train a challenger with the champion's own recipe. Two slices judge it, and neither trains:
- the frozen holdout: the historical claims the config holds out, all of them, with the labels
  history gave them, so no batch of corrections can move or shrink the yardstick (corrections
  of held-out claims are judged on the feedback slice instead); a holdout too small to gate a
  task refuses the promotion;
- the feedback slice: corrected claims scored on their corrections, namely every corrected
  held-out claim and a hashed share of the other corrected claims. It shows whether the
  challenger learned what the adjusters taught.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from claims.data.dataset import LabelledClaims, hash_fraction, load_claims
from claims.model.checkpoint import load_checkpoint
from claims.model.predictor import Predictor, ZeroShotPredictor
from claims.store import Store
from claims.store.registry import CHALLENGER_PREFIX, Registry, RegistryError
from schemas.claim import Claim
from schemas.config import SpecialistConfig
from schemas.feedback import FeedbackRecord
from schemas.registry import GateDecision, Lineage, ModelVersion
from training.gate import FEEDBACK, HOLDOUT, judge, score_slice
from training.trainer import SpecialistTrainer

FEEDBACK_HOLDOUT_SALT = "feedback-holdout:"
Progress = Callable[[float, str], None]


@dataclass
class RetrainingData:
    """The claims a challenger trains on (test rows flagged), and the two slices that judge it."""

    training: LabelledClaims
    holdout: LabelledClaims
    feedback_slice: LabelledClaims
    used_feedback: list[str] = field(default_factory=list)
    held_out_feedback: list[str] = field(default_factory=list)
    unusable_feedback: dict[str, str] = field(default_factory=dict)

    def sha256(self) -> str:
        """A digest of exactly what trained: claims, labels and split, in order."""
        digest = hashlib.sha256()
        for claim, is_test, *labels in zip(
            self.training.claims,
            self.training.is_test,
            *self.training.labels.values(),
            strict=True,
        ):
            digest.update(claim.model_dump_json().encode())
            digest.update(json.dumps([is_test, labels]).encode())
        return digest.hexdigest()


def merge_feedback(
    config: SpecialistConfig,
    historical: LabelledClaims,
    corrections: Sequence[FeedbackRecord],
    recorded_claims: dict[str, Claim],
) -> RetrainingData:
    """`corrections` oldest first; `recorded_claims` are claims the service triaged that the
    historical file lacks, so their corrections can train too."""
    claims = list(historical.claims)
    labels = {task: list(values) for task, values in historical.labels.items()}
    is_test = list(historical.is_test)
    row_of = {claim.claim_id: row for row, claim in enumerate(claims)}
    corrected: dict[int, dict[str, str]] = {}
    used: list[tuple[str, str]] = []  # (feedback_id, claim_id)
    unusable: dict[str, str] = {}
    for item in corrections:
        tasks = {task: label for task, label in item.labels.items() if task in labels}
        if not tasks:
            unusable[item.feedback_id] = f"corrects none of the tasks {sorted(labels)}"
            continue
        row = row_of.get(item.claim_id)
        if row is None:
            claim = recorded_claims.get(item.claim_id)
            if claim is None:
                unusable[item.feedback_id] = f"claim {item.claim_id} was never seen"
                continue
            row = row_of[item.claim_id] = len(claims)
            claims.append(claim)
            for values in labels.values():
                values.append(None)
            # a new claim falls on the side of the split its id hashes to, as every claim does
            is_test.append(
                config.split.column is None
                and hash_fraction(claim.claim_id) < config.split.test_fraction
            )
        for task, label in tasks.items():
            labels[task][row] = label
            corrected.setdefault(row, {})[task] = label
        used.append((item.feedback_id, item.claim_id))

    merged = LabelledClaims(claims, labels, is_test)
    fraction = config.retraining.feedback_holdout_fraction
    judged = sorted(
        row
        for row in corrected
        if is_test[row] or hash_fraction(claims[row].claim_id, FEEDBACK_HOLDOUT_SALT) < fraction
    )
    judged_ids = {claims[row].claim_id for row in judged}
    feedback_slice = LabelledClaims(
        claims=[claims[row] for row in judged],
        labels={task: [corrected[row].get(task) for row in judged] for task in labels},
        is_test=[True] * len(judged),
    )
    return RetrainingData(
        training=merged.subset(row for row in range(len(claims)) if row not in set(judged)),
        # history's own test rows with history's labels, whatever the feedback says: neither a
        # correction nor a claim id chosen to hash into the test split can shrink or relabel it
        holdout=historical.subset(row for row, test in enumerate(historical.is_test) if test),
        feedback_slice=feedback_slice,
        used_feedback=[item for item, claim_id in used if claim_id not in judged_ids],
        held_out_feedback=[item for item, claim_id in used if claim_id in judged_ids],
        unusable_feedback=unusable,
    )


def gate_challenger(
    config: SpecialistConfig,
    data: RetrainingData,
    systems: Mapping[str, Predictor],
    champion_version: str,
    challenger_version: str,
) -> GateDecision:
    """Score champion, challenger and base model on the frozen holdout and the feedback slice,
    and judge: the decision retraining registers, whatever it says."""
    scores = {
        name: {system: score_slice(config, model, claims) for system, model in systems.items()}
        for name, claims in ((HOLDOUT, data.holdout), (FEEDBACK, data.feedback_slice))
    }
    return judge(config, scores, champion_version, challenger_version)


@dataclass
class RetrainOutcome:
    decision: GateDecision
    challenger: ModelVersion
    unusable_feedback: dict[str, str]


def retrain(
    data_path: str | Path,
    registry: Registry,
    store: Store,
    *,
    progress: Progress | None = None,
    show_progress: bool = False,
) -> RetrainOutcome:
    """Train a challenger from history plus confirmed feedback, gate it, register it, and
    promote it only if the gate says so. The decision is recorded in the registry either way."""
    report = progress or (lambda fraction, message: None)
    registry.remove_abandoned()  # what killed retrains left behind
    champion_version = registry.champion()
    if champion_version is None:
        raise RegistryError("the registry has no champion to retrain: register and promote one")
    report(0.02, f"loading champion {champion_version}")
    champion = load_checkpoint(registry.checkpoint(champion_version))
    config = champion.config
    data_path = Path(data_path)
    historical = load_claims(data_path, config)
    corrections = store.confirmed_corrections()
    known = {claim.claim_id for claim in historical.claims}
    recorded = store.latest_claims({item.claim_id for item in corrections} - known)
    data = merge_feedback(config, historical, corrections, recorded)
    report(0.05, f"training on {len(data.training):,} claims, {len(data.used_feedback)} corrected")

    def on_step(step: int, total: int) -> None:
        report(0.05 + 0.8 * step / total, f"training step {step}/{total}")

    data_sha256 = data.sha256()  # serialises every claim: once
    with registry.scratch(CHALLENGER_PREFIX) as work:
        fitted = SpecialistTrainer(config, show_progress=show_progress, on_step=on_step).fit_claims(
            data.training,
            data_name=f"{data_path.name} + {len(data.used_feedback)} corrections",
            data_sha256=data_sha256,
        )
        checkpoint = Path(work) / "checkpoint"
        manifest = fitted.save(checkpoint)
        report(0.87, "scoring champion, challenger and base model")
        challenger = load_checkpoint(checkpoint)
        base = ZeroShotPredictor.from_base(
            champion.base_path, config.tasks, champion.predictor.labels, config.training.max_length
        )
        systems: dict[str, Predictor] = {
            "champion": champion.predictor,
            "challenger": challenger.predictor,
            "base": base,
        }
        decision = gate_challenger(config, data, systems, champion_version, manifest.model_version)
        lineage = Lineage(
            origin="retrained",
            parent_version=champion_version,
            training_data_file=data_path.name,
            training_data_sha256=data_sha256,
            training_rows=len(data.training),
            feedback_count=len(data.used_feedback),
            feedback_ids=data.used_feedback,
            held_out_feedback_ids=data.held_out_feedback,
            gate=decision,
        )
        entry = registry.register(checkpoint, lineage)
    if decision.promoted:
        registry.promote(entry.version, decision.reason)
    report(1.0, decision.reason)
    return RetrainOutcome(decision, registry.get(entry.version), data.unusable_feedback)

"""Which model answers: the tuned specialist when its checkpoint is sound, else the base model.

The base model is always loaded, so a request on which the specialist fails is still answered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from claims.checkpoint import CheckpointError, FallbackCode, LoadedCheckpoint, load_checkpoint
from claims.config import load_config
from claims.encoder import base_model_info, resolve_base_model
from claims.features import FeatureError
from claims.predictor import ZeroShotPredictor
from claims.triage import triage
from schemas.checkpoint import BaseModelInfo
from schemas.claim import Claim
from schemas.config import SpecialistConfig
from schemas.service import ActiveModel, Readiness, TunedModelInfo
from schemas.triage import TriageResult
from serving.settings import ServiceSettings

log = logging.getLogger("claims.serving")


@dataclass
class ModelService:
    config: SpecialistConfig
    base_info: BaseModelInfo
    base: ZeroShotPredictor
    tuned: LoadedCheckpoint | None
    fallback_reason: str | None
    checkpoint_path: str | None

    @classmethod
    def start(cls, settings: ServiceSettings) -> ModelService:
        expected = load_config(settings.config) if settings.config else None
        config = expected or load_config()
        override = resolve_base_model(settings.base_model) if settings.base_model else None
        base_path = override or resolve_base_model(config.base_model)
        tuned, reason = None, None
        if settings.model_dir is None:
            reason = f"{FallbackCode.checkpoint_missing}: no checkpoint was given"
        else:
            try:
                tuned = load_checkpoint(settings.model_dir, override, expected)
                config, base_path = tuned.config, tuned.base_path
            except CheckpointError as error:
                reason = str(error)
        if reason:
            log.warning("serving from the base model: %s", reason)
        labels = tuned.predictor.labels if tuned else {t.name: list(t.labels) for t in config.tasks}
        unlabeled = [task for task, names in labels.items() if not names]
        if unlabeled:
            raise ValueError(
                f"tasks {unlabeled} list no labels in the config, so the base model cannot "
                "answer them; list them under [tasks.labels]"
            )
        base = ZeroShotPredictor.from_base(
            base_path, config.tasks, labels, config.training.max_length
        )
        return cls(
            config=config,
            base_info=base_model_info(base_path),
            base=base,
            tuned=tuned,
            fallback_reason=reason,
            checkpoint_path=str(settings.model_dir) if settings.model_dir else None,
        )

    def triage(self, claims: Sequence[Claim]) -> list[TriageResult]:
        if self.tuned is not None:
            try:
                return triage(claims, self.tuned.predictor, self.config.policy)
            except FeatureError:
                raise  # the request's fault, answered with 422
            except Exception as error:  # the specialist failed: the base model still answers
                log.exception("tuned model failed; answering from the base model")
                reason = f"{FallbackCode.inference_error}: {type(error).__name__}"
                return triage(claims, self.base, self.config.policy, reason)
        return triage(claims, self.base, self.config.policy, self.fallback_reason)

    def readiness(self) -> Readiness:
        if self.tuned is not None:
            return Readiness(status="ready", source="tuned")
        return Readiness(status="degraded", source="base", reason=self.fallback_reason)

    def active(self) -> ActiveModel:
        serving = self.tuned.predictor if self.tuned else self.base
        tuned_info = None
        if self.tuned is not None:
            manifest = self.tuned.manifest
            tuned_info = TunedModelInfo(
                model_version=manifest.model_version,
                strategy=manifest.strategy,
                created_at=manifest.created_at,
                checkpoint=self.checkpoint_path or "",
                metrics=manifest.metrics,
            )
        return ActiveModel(
            source=serving.source,
            model_version=serving.model_version,
            fallback_reason=self.fallback_reason,
            base_model=self.base_info,
            tuned=tuned_info,
            tasks=serving.labels,
            policy_version=self.config.policy.version,
        )

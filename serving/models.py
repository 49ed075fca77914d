"""Which model answers: the tuned specialist when its checkpoint is sound, else the base model.

A registry champion that cannot load at start gives way to the champion before it (each of
them passed the gate once), with a `previous_champion` reason, and only then to the base model.

The base model is always loaded, so a request on which the specialist fails is still answered.
The specialist is the registry's champion unless a checkpoint folder is pinned; when the
champion changes, the new one is loaded beside the old and swapped in whole, so requests in
flight finish on the model they started with and none is dropped.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from claims.domain.config import load_config
from claims.domain.language import LanguageDetector
from claims.domain.triage import triage
from claims.model.checkpoint import CheckpointError, FallbackCode, LoadedCheckpoint, load_checkpoint
from claims.model.encoder import base_model_info, resolve_base_model
from claims.model.features import FeatureError
from claims.model.predictor import Predictor, ZeroShotPredictor
from claims.store import Store
from claims.store.registry import Registry
from schemas.checkpoint import BaseModelInfo
from schemas.claim import Claim
from schemas.config import SpecialistConfig
from schemas.service import ActiveModel, Readiness, TunedModelInfo
from schemas.triage import TriageResult
from serving.settings import ServiceSettings

log = logging.getLogger("claims.serving")


@dataclass(frozen=True)
class Serving:
    """Everything one request needs, replaced whole on a switch."""

    config: SpecialistConfig
    base: ZeroShotPredictor
    base_path: Path
    base_info: BaseModelInfo
    tuned: LoadedCheckpoint | None
    fallback_reason: str | None
    checkpoint_path: str | None
    registry_version: str | None
    since: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def predictor(self) -> Predictor:
        return self.tuned.predictor if self.tuned else self.base


def load_serving(
    settings: ServiceSettings,
    registry: Registry,
    version: str | None,
    previous: Serving | None = None,
) -> Serving:
    """The pinned checkpoint, else the given registry version; the base model when neither can
    serve. `previous` lends its base model when the tasks are the same."""
    expected = load_config(settings.config) if settings.config else None
    override = resolve_base_model(settings.base_model) if settings.base_model else None
    checkpoint = settings.model_dir or (registry.checkpoint(version) if version else None)
    tuned, reason = None, None
    if checkpoint is None:
        reason = (
            f"{FallbackCode.checkpoint_missing}: no checkpoint was given and the registry "
            "has no champion"
        )
    else:
        try:
            tuned = load_checkpoint(checkpoint, override, expected)
            tuned.predictor.use_precision(settings.precision)
            tuned.predictor.batch_size = settings.forward_batch_size
        except CheckpointError as error:
            reason = str(error)
    if reason:
        log.warning("the specialist cannot serve: %s", reason)
    config = tuned.config if tuned else (expected or load_config())
    base_path = tuned.base_path if tuned else (override or resolve_base_model(config.base_model))
    labels = tuned.predictor.labels if tuned else {t.name: list(t.labels) for t in config.tasks}
    unlabeled = [task for task, names in labels.items() if not names]
    if unlabeled:
        raise ValueError(
            f"tasks {unlabeled} list no labels in the config, so the base model cannot "
            "answer them; list them under [tasks.labels]"
        )
    reusable = previous is not None and (
        previous.base_path == base_path and previous.base.labels == labels
    )
    base = (
        previous.base
        if reusable and previous is not None
        else ZeroShotPredictor.from_base(
            base_path, config.tasks, labels, config.training.max_length
        )
    )
    return Serving(
        config=config,
        base=base,
        base_path=base_path,
        base_info=previous.base_info
        if reusable and previous is not None
        else base_model_info(base_path),
        tuned=tuned,
        fallback_reason=reason,
        checkpoint_path=str(checkpoint) if checkpoint else None,
        registry_version=version if tuned else None,
    )


def freeze_loaded_objects() -> None:
    """Takes the loaded models out of the garbage collector's reach.

    They are about half a million long-lived Python objects (vocabularies, TF-IDF terms,
    modules); a full collection walks them all, about 0.2 s on two cores, and every request in
    flight waits for it. What a switch left behind is collected first, once.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelService:
    def __init__(self, settings: ServiceSettings, registry: Registry, serving: Serving) -> None:
        self.settings = settings
        self.registry = registry
        self.serving = serving
        self.reload_error: str | None = None
        self._failed_version: str | None = None
        self._switching = threading.Lock()
        self.languages = LanguageDetector(
            settings.detect_languages, settings.language_min_confidence
        )
        self.languages.load()  # at start: a language it cannot detect stops the service here

    @classmethod
    def start(cls, settings: ServiceSettings, store: Store) -> ModelService:
        registry = Registry.from_settings(settings, store)
        version = None
        if not settings.model_dir:
            try:
                registry.remove_abandoned()  # work folders of retrains killed mid-way
            except OSError as error:
                log.warning("could not clear abandoned registry work: %s", error)
            version = registry.champion()
        serving = load_serving(settings, registry, version)
        service = cls(settings, registry, serving)
        if serving.tuned is None and version is not None:
            service._fall_back_to_earlier_champion(version, serving)
        freeze_loaded_objects()
        return service

    def _fall_back_to_earlier_champion(self, version: str, failed: Serving) -> None:
        """The champion cannot serve: the champions before it, newest first, each of which
        once passed the gate, are tried before the base model. The champion is not retried
        until the registry names another."""
        self._failed_version = version
        self.reload_error = f"champion {version} cannot serve: {failed.fallback_reason}"
        pointer = self.registry.pointer()
        for earlier in reversed(pointer.previous if pointer else []):
            try:
                candidate = load_serving(self.settings, self.registry, earlier, failed)
            except Exception as error:
                log.warning("earlier champion %s cannot serve: %s", earlier, error)
                continue
            if candidate.tuned is None:
                continue
            reason = (
                f"{FallbackCode.previous_champion}: champion {version} cannot serve "
                f"({failed.fallback_reason}); {earlier}, a champion before it, serves"
            )
            self.serving = replace(candidate, fallback_reason=reason)
            log.error("%s", reason)
            return

    @property
    def pinned(self) -> bool:
        """A checkpoint given by path serves until restart; the registry is not followed."""
        return self.settings.model_dir is not None

    def reload(self) -> bool:
        """Follow the registry's champion; True when the service switched.

        A champion that cannot serve is reported in `/v1/models/active` and tried once; the
        model that serves now goes on serving.
        """
        if self.pinned:
            return False
        with self._switching:
            try:
                version = self.registry.champion()
                current = self.serving
                if version == current.registry_version:
                    self.reload_error = self._failed_version = None  # e.g. a rollback
                    if current.tuned is not None and current.fallback_reason is not None:
                        # the earlier champion that stood in is the champion again
                        self.serving = replace(current, fallback_reason=None)
                    return False
                if version is None or version == self._failed_version:
                    return False
                candidate = load_serving(self.settings, self.registry, version, current)
            except Exception as error:
                self.reload_error = f"{type(error).__name__}: {error}"
                log.exception("could not read the registry's champion")
                return False
            if candidate.tuned is None:
                self._failed_version = version
                self.reload_error = f"champion {version} cannot serve: {candidate.fallback_reason}"
                log.error(
                    "%s; %s keeps serving", self.reload_error, current.predictor.model_version
                )
                return False
            self.serving, self.reload_error, self._failed_version = candidate, None, None
            freeze_loaded_objects()
            log.info("switched to champion %s", version)
            return True

    def triage(self, claims: Sequence[Claim], explain: bool = False) -> list[TriageResult]:
        """`explain`: every tuned answer explained, not only those that need review."""
        serving = self.serving  # one model for the whole request, even across a switch
        policy, languages = serving.config.policy, self.languages
        if serving.tuned is not None:
            try:
                return triage(
                    claims, serving.tuned.predictor, policy, explain=explain, languages=languages
                )
            except FeatureError:
                raise  # the request's fault, answered with 422
            except Exception as error:  # the specialist failed: the base model still answers
                log.exception("tuned model failed; answering from the base model")
                reason = f"{FallbackCode.inference_error}: {type(error).__name__}"
                return triage(claims, serving.base, policy, reason, languages=languages)
        return triage(claims, serving.base, policy, serving.fallback_reason, languages=languages)

    @property
    def labels(self) -> dict[str, list[str]]:
        return self.serving.predictor.labels

    def readiness(self) -> Readiness:
        serving = self.serving
        if serving.tuned is not None:
            if serving.fallback_reason is not None:  # an earlier champion stands in
                return Readiness(status="degraded", source="tuned", reason=serving.fallback_reason)
            return Readiness(status="ready", source="tuned")
        return Readiness(status="degraded", source="base", reason=serving.fallback_reason)

    def active(self) -> ActiveModel:
        serving = self.serving
        tuned_info = None
        if serving.tuned is not None:
            manifest = serving.tuned.manifest
            tuned_info = TunedModelInfo(
                model_version=manifest.model_version,
                strategy=manifest.strategy,
                created_at=manifest.created_at,
                checkpoint=serving.checkpoint_path or "",
                metrics=manifest.metrics,
            )
        return ActiveModel(
            source=serving.predictor.source,
            model_version=serving.predictor.model_version,
            fallback_reason=serving.fallback_reason,
            base_model=serving.base_info,
            tuned=tuned_info,
            tasks=serving.predictor.labels,
            policy_version=serving.config.policy.version,
            registry_version=serving.registry_version,
            follows_registry=not self.pinned,
            serving_since=serving.since,
            reload_error=self.reload_error,
        )

"""The tuned specialist on disk: safetensors weights, JSON for the rest, a manifest of digests.

Loading verifies every digest and the base model before any weight is read, and says exactly
why a checkpoint cannot serve, so the service can fall back and tell its callers why.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any

from peft import LoraConfig, PeftModel
from pydantic import ValidationError
from safetensors.torch import load_file, save_file
from torch import nn

from claims.model.encoder import (
    BaseModelError,
    base_model_info,
    file_sha256,
    load_encoder,
    load_tokenizer,
    resolve_base_model,
)
from claims.model.features import StructuredFeatures
from claims.model.network import Calibration, SpecialistModel
from claims.model.predictor import TunedPredictor
from claims.model.stack import BoostedPartner
from schemas.checkpoint import BaseModelInfo, DataInfo, FileDigest, Manifest
from schemas.config import SpecialistConfig, Strategy

MANIFEST = "manifest.json"
CONFIG = "config.json"
SPECIALIST = "specialist.json"  # label maps, fitted structured features, calibration
HEADS = "heads.safetensors"
ENCODER = "encoder.safetensors"  # last-layers / full: the tuned encoder tensors only
ADAPTER = "adapter"  # LoRA: peft's own adapter folder
PARTNER = "partner.json"  # the stack's other members and weights, when it has them
PARTNER_ARRAYS = "partner.safetensors"  # the text member's vocabulary-sized arrays
MODEL_CARD = "MODEL_CARD.md"
_LIBRARIES = ("torch", "transformers", "peft", "lightgbm", "scikit-learn", "claims-specialist")


class FallbackCode(StrEnum):
    checkpoint_missing = "checkpoint_missing"
    manifest_invalid = "manifest_invalid"
    file_missing = "file_missing"
    hash_mismatch = "hash_mismatch"
    base_model_mismatch = "base_model_mismatch"
    config_mismatch = "config_mismatch"
    load_failed = "load_failed"
    inference_error = "inference_error"
    previous_champion = "previous_champion"  # the champion cannot serve; the one before it does


class CheckpointError(RuntimeError):
    def __init__(self, code: FallbackCode, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail


@dataclass
class TrainedSpecialist:
    """What training hands to the writer."""

    model: SpecialistModel
    strategy: Strategy
    config: SpecialistConfig
    labels: dict[str, list[str]]
    features: StructuredFeatures
    calibration: Calibration
    base_model: BaseModelInfo
    training_data: DataInfo
    metrics: dict[str, dict[str, dict[str, float]]]
    trainable_parameters: int
    total_parameters: int
    training_seconds: float
    selection: dict[str, str]
    partner: BoostedPartner | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _encoder_state(specialist: TrainedSpecialist) -> dict[str, Any]:
    trainable = {n for n, p in specialist.model.encoder.named_parameters() if p.requires_grad}
    return {
        name: tensor.detach().contiguous()
        for name, tensor in specialist.model.encoder.state_dict().items()
        if name in trainable
    }


def write_checkpoint(
    specialist: TrainedSpecialist, out_dir: str | Path, model_card: Callable[[str], str]
) -> Manifest:
    """Write to a temporary folder and rename it into place: never a half-written checkpoint.

    `model_card(model_version) -> str` renders the card once the version is known.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        if specialist.strategy is Strategy.lora:
            # Same model, same files wherever it was trained: no install path, a stable order.
            adapted = specialist.model.encoder
            if not isinstance(adapted, PeftModel):
                raise TypeError("a LoRA specialist's encoder is a peft model")
            adapter = adapted.peft_config["default"]
            if not isinstance(adapter, LoraConfig):
                raise TypeError("a LoRA specialist's adapter is LoRA's")
            adapter.base_model_name_or_path = specialist.base_model.name
            if isinstance(adapter.target_modules, set):
                adapter.target_modules = sorted(adapter.target_modules)
            # The vocabulary never changes here, so peft need not look the base model up.
            adapted.save_pretrained(str(staging / ADAPTER), save_embedding_layers=False)
            (staging / ADAPTER / "README.md").unlink()  # peft's stub card; MODEL_CARD.md is ours
        elif specialist.strategy is not Strategy.head:
            save_file(_encoder_state(specialist), staging / ENCODER)
        save_file(specialist.model.head_state(), staging / HEADS)
        _write_json(staging / CONFIG, specialist.config.model_dump(mode="json"))
        _write_json(
            staging / SPECIALIST,
            {
                "labels": specialist.labels,
                "features": specialist.features.model_dump(mode="json"),
                "calibration": specialist.calibration.to_json(),
            },
        )
        if specialist.partner is not None:
            specialist.partner.save(staging / PARTNER, staging / PARTNER_ARRAYS)
        files = _digests(staging)
        model_version = (
            "sp-"
            + hashlib.sha256("".join(f.path + f.sha256 for f in files).encode()).hexdigest()[:12]
        )
        (staging / MODEL_CARD).write_text(model_card(model_version), encoding="utf-8")
        manifest = Manifest(
            model_version=model_version,
            created_at=datetime.now(UTC),
            strategy=specialist.strategy,
            base_model=specialist.base_model,
            training_data=specialist.training_data,
            files=_digests(staging),
            metrics=specialist.metrics,
            trainable_parameters=specialist.trainable_parameters,
            total_parameters=specialist.total_parameters,
            training_seconds=round(specialist.training_seconds, 2),
            stage_seconds={name: round(s, 2) for name, s in specialist.stage_seconds.items()},
            selection=specialist.selection,
            library_versions={name: metadata.version(name) for name in _LIBRARIES},
        )
        _write_json(staging / MANIFEST, manifest.model_dump(mode="json"))
        for path in [staging, *staging.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the service's own user
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _digests(folder: Path) -> list[FileDigest]:
    return [
        FileDigest(
            path=path.relative_to(folder).as_posix(),
            sha256=file_sha256(path),
            bytes=path.stat().st_size,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    ]


def required_files(strategy: Strategy) -> set[str]:
    """What every checkpoint of this strategy holds, whatever else it may (the partner)."""
    required = {CONFIG, SPECIALIST, HEADS, MODEL_CARD}
    if strategy is Strategy.lora:
        required |= {f"{ADAPTER}/adapter_config.json", f"{ADAPTER}/adapter_model.safetensors"}
    elif strategy is not Strategy.head:
        required.add(ENCODER)
    return required


def verify_checkpoint(folder: str | Path) -> Manifest:
    """Read the manifest, check that it lists every file there and every file the strategy
    needs, and check every file against its digest."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise CheckpointError(FallbackCode.checkpoint_missing, f"no {MANIFEST} in {folder}")
    try:
        manifest = Manifest.model_validate_json((folder / MANIFEST).read_bytes())
    except ValidationError as error:
        raise CheckpointError(FallbackCode.manifest_invalid, str(error).splitlines()[0]) from error
    # a file the manifest leaves out would be read unchecked: every file is listed, and so is
    # every file the strategy loads
    listed = {entry.path for entry in manifest.files}
    unlisted = sorted(required_files(manifest.strategy) - listed)
    if unlisted:
        raise CheckpointError(
            FallbackCode.manifest_invalid, f"the manifest does not list {', '.join(unlisted)}"
        )
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and name != MANIFEST and name not in listed:
            raise CheckpointError(FallbackCode.manifest_invalid, f"{name} is not in the manifest")
    for entry in manifest.files:
        path = folder / entry.path
        if not path.is_file():
            raise CheckpointError(FallbackCode.file_missing, f"{entry.path} is missing")
        if file_sha256(path) != entry.sha256:
            raise CheckpointError(
                FallbackCode.hash_mismatch, f"{entry.path} does not match its manifest digest"
            )
    return manifest


@dataclass
class LoadedCheckpoint:
    manifest: Manifest
    config: SpecialistConfig
    base_path: Path
    predictor: TunedPredictor


def load_checkpoint(
    folder: str | Path,
    base_path: Path | None = None,
    expected_config: SpecialistConfig | None = None,
) -> LoadedCheckpoint:
    """Verify, then load; every failure is a CheckpointError with its fallback code.

    The base model is the one the checkpoint's config names, unless `base_path` overrides it.
    """
    folder = Path(folder)
    manifest = verify_checkpoint(folder)
    try:
        config = SpecialistConfig.model_validate_json((folder / CONFIG).read_bytes())
        state = json.loads((folder / SPECIALIST).read_text(encoding="utf-8"))
        labels: dict[str, list[str]] = state["labels"]
    except (ValidationError, ValueError, KeyError) as error:
        raise CheckpointError(
            FallbackCode.load_failed, f"{CONFIG}/{SPECIALIST}: {error}"
        ) from error
    try:
        base_path = base_path or resolve_base_model(config.base_model)
    except BaseModelError as error:
        raise CheckpointError(FallbackCode.base_model_mismatch, str(error)) from error
    actual_base = base_model_info(base_path)
    if manifest.base_model.sha256 != actual_base.sha256:
        raise CheckpointError(
            FallbackCode.base_model_mismatch,
            f"tuned from {manifest.base_model.name} ({manifest.base_model.sha256[:12]}), "
            f"but the base model here is {actual_base.name} ({actual_base.sha256[:12]})",
        )
    if expected_config is not None:
        _check_same_tasks(expected_config, config, labels)
    try:
        predictor = _build_predictor(folder, base_path, manifest, config, state)
    except Exception as error:  # any library error while reading weights means: cannot serve
        raise CheckpointError(
            FallbackCode.load_failed, f"{type(error).__name__}: {error}"
        ) from error
    return LoadedCheckpoint(manifest, config, base_path, predictor)


def _check_same_tasks(
    expected: SpecialistConfig, actual: SpecialistConfig, labels: dict[str, list[str]]
) -> None:
    wanted = {task.name: list(task.labels) for task in expected.tasks}
    if set(wanted) != set(labels):
        raise CheckpointError(
            FallbackCode.config_mismatch,
            f"the service expects tasks {sorted(wanted)}, the checkpoint has {sorted(labels)}",
        )
    for task, names in wanted.items():
        if names and sorted(names) != sorted(labels[task]):
            raise CheckpointError(
                FallbackCode.config_mismatch,
                f"task {task}: the service expects labels {names}, the checkpoint has "
                f"{labels[task]}",
            )


def _build_predictor(
    folder: Path,
    base_path: Path,
    manifest: Manifest,
    config: SpecialistConfig,
    state: dict[str, Any],
) -> TunedPredictor:
    base = load_encoder(base_path)
    hidden_size = int(base.config.hidden_size)
    encoder: nn.Module = base
    if manifest.strategy is Strategy.lora:
        # Merging the adapter into the base weights makes inference as fast as the base model.
        encoder = PeftModel.from_pretrained(encoder, folder / ADAPTER).merge_and_unload()
    elif manifest.strategy is not Strategy.head:
        tuned = load_file(folder / ENCODER)
        unknown = set(tuned) - set(encoder.state_dict())
        if unknown:
            raise ValueError(f"{ENCODER} holds tensors the base model lacks: {sorted(unknown)[:3]}")
        encoder.load_state_dict(tuned, strict=False)
    features = StructuredFeatures.model_validate(state["features"])
    labels = state["labels"]
    model = SpecialistModel(
        encoder,
        hidden_size,
        features.dimension,
        {task: len(names) for task, names in labels.items()},
    )
    missing, unexpected = model.load_state_dict(load_file(folder / HEADS), strict=False)
    missing_heads = [name for name in missing if not name.startswith("encoder.")]
    if missing_heads or unexpected:
        raise ValueError(f"{HEADS}: missing {missing_heads[:3]}, unexpected {unexpected[:3]}")
    partner = None
    listed = {entry.path for entry in manifest.files}
    if PARTNER in listed:
        if PARTNER_ARRAYS not in listed:  # never read a file the manifest does not vouch for
            raise ValueError(f"{PARTNER} is listed but {PARTNER_ARRAYS} is not")
        partner = BoostedPartner.load(folder / PARTNER, folder / PARTNER_ARRAYS)
    return TunedPredictor(
        model,
        load_tokenizer(base_path),
        features,
        Calibration.from_json(state["calibration"]),
        labels,
        config.training.max_length,
        manifest.model_version,
        partner=partner,
    )

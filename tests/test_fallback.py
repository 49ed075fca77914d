"""A checkpoint that cannot serve is refused with a reason, and the base model serves instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claims.domain.config import load_config
from claims.model.checkpoint import MANIFEST, CheckpointError, FallbackCode, load_checkpoint
from serving.models import ModelService
from serving.settings import ServiceSettings


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def claim_other_base(folder: Path) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["base_model"] = {"name": "someone/other-encoder", "sha256": "0" * 64}
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (lambda f: flip_a_byte(f / "heads.safetensors"), FallbackCode.hash_mismatch),
        (
            lambda f: flip_a_byte(f / "encoder.safetensors"),
            FallbackCode.hash_mismatch,
        ),
        (lambda f: (f / "specialist.json").unlink(), FallbackCode.file_missing),
        (lambda f: (f / MANIFEST).write_text("{not json"), FallbackCode.manifest_invalid),
        (lambda f: (f / MANIFEST).unlink(), FallbackCode.checkpoint_missing),
        (claim_other_base, FallbackCode.base_model_mismatch),
    ],
    ids=["heads-byte", "encoder-byte", "missing-file", "bad-manifest", "no-manifest", "other-base"],
)
def test_damaged_checkpoints_are_refused_with_their_reason(checkpoint_copy: Path, damage, code):
    damage(checkpoint_copy)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(checkpoint_copy)
    assert refused.value.code is code


def test_a_checkpoint_for_other_tasks_does_not_match_the_config(checkpoint_copy: Path) -> None:
    expected = load_config()
    expected.tasks = [t for t in expected.tasks if t.name != "siu_referral"]
    expected.policy.routes = [r for r in expected.policy.routes if r.route == "complex"]
    expected.policy.review_routes = ["complex"]
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(checkpoint_copy, expected_config=expected)
    assert refused.value.code is FallbackCode.config_mismatch


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: __import__("shutil").rmtree(f), "checkpoint_missing"),
        (lambda f: flip_a_byte(f / "heads.safetensors"), "hash_mismatch"),
        (claim_other_base, "base_model_mismatch"),
    ],
    ids=["missing", "flipped-byte", "other-base"],
)
def test_the_service_starts_on_the_base_model_and_says_why(checkpoint_copy: Path, damage, reason):
    damage(checkpoint_copy)
    service = ModelService.start(ServiceSettings(model_dir=checkpoint_copy))
    assert service.serving.tuned is None
    assert service.readiness().status == "degraded"
    assert service.readiness().reason.startswith(reason)
    from schemas.claim import Claim

    result = service.triage([Claim(claim_id="C-1", description="My basement flooded.")])[0]
    assert result.served_by.source == "base"
    assert result.served_by.fallback_reason.startswith(reason)
    assert result.decision.needs_review
    assert "fallback_model" in [r.code for r in result.decision.review_reasons]


def test_a_new_champion_that_cannot_serve_leaves_the_current_one_serving(
    trained_checkpoint: Path, checkpoint_copy: Path, data_dir: Path
) -> None:
    from claims.store.registry import Registry
    from schemas.registry import Lineage

    registry = Registry(data_dir / "registry")
    lineage = Lineage(
        origin="registered", training_data_file="c.csv", training_data_sha256="0", training_rows=1
    )
    good = registry.register(trained_checkpoint, lineage).version
    registry.promote(good, "first")
    service = ModelService.start(ServiceSettings())
    manifest = json.loads((checkpoint_copy / MANIFEST).read_text())
    manifest["model_version"] = "sp-broken"
    (checkpoint_copy / MANIFEST).write_text(json.dumps(manifest))
    broken = registry.register(checkpoint_copy, lineage).version
    flip_a_byte(registry.checkpoint(broken) / "heads.safetensors")  # damaged after registration
    registry.promote(broken, "a bad promotion")
    assert service.reload() is False
    active = service.active()
    assert (active.source, active.registry_version) == ("tuned", good)
    assert active.reload_error.startswith("champion sp-broken cannot serve: hash_mismatch")
    registry.rollback("back to the good one")
    assert service.reload() is False  # already serving it
    assert (service.active().registry_version, service.active().reload_error) == (good, None)

"""Really fine-tunes the packaged base model on the CPU: a few steps, then save and reload."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from claims.data.dataset import load_claims
from claims.model.checkpoint import MANIFEST, load_checkpoint
from claims.model.encoder import load_encoder, resolve_base_model
from schemas.checkpoint import Manifest
from schemas.config import Strategy
from tests.helpers import quick_config
from training.data import split_validation
from training.metrics import score_predictions
from training.trainer import SpecialistTrainer

pytestmark = pytest.mark.slow


def test_a_fine_tuned_checkpoint_reloads_to_identical_predictions(
    trained_checkpoint: Path, claims_csv: Path
) -> None:
    claims = load_claims(claims_csv, quick_config()).claims[:40]
    first = load_checkpoint(trained_checkpoint).predictor.predict_proba(claims)
    second = load_checkpoint(trained_checkpoint).predictor.predict_proba(claims)
    assert first.keys() == {"claim_type", "severity", "siu_referral"}
    for task in first:
        np.testing.assert_array_equal(first[task], second[task])
        np.testing.assert_allclose(first[task].sum(axis=1), 1.0, rtol=1e-5)


def test_weights_stored_in_bf16_answer_exactly_as_autocast_does(
    trained_checkpoint: Path, claims_csv: Path
) -> None:
    claims = load_claims(claims_csv, quick_config()).claims[:40]
    casting = load_checkpoint(trained_checkpoint).predictor
    casting.bf16 = True  # autocast alone: the fp32 weights are cast at every pass
    stored = load_checkpoint(trained_checkpoint).predictor
    stored.use_precision("bf16")
    linears = [m for m in stored.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    fp32 = load_checkpoint(trained_checkpoint).predictor
    fp32.use_precision("fp32")
    expected, exact = casting.predict_proba(claims), fp32.predict_proba(claims)
    for task, probabilities in stored.predict_proba(claims).items():
        np.testing.assert_array_equal(probabilities, expected[task])
        np.testing.assert_allclose(probabilities, exact[task], atol=0.02)
    with pytest.raises(ValueError, match="bf16 already"):
        stored.use_precision("fp32")


def test_the_manifest_describes_the_model_and_its_data(trained_checkpoint: Path) -> None:
    manifest = Manifest.model_validate_json((trained_checkpoint / MANIFEST).read_text())
    files = {entry.path for entry in manifest.files}
    assert {"heads.safetensors", "encoder.safetensors", "config.json"} <= files
    assert {"specialist.json", "MODEL_CARD.md", "partner.json", "partner.safetensors"} <= files
    assert not any(path.endswith((".bin", ".pt", ".pkl")) for path in files)
    assert manifest.strategy is Strategy.full
    assert manifest.base_model.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest.trainable_parameters == manifest.total_parameters
    assert set(manifest.metrics) == {"validation", "test", "tuned_alone"}
    assert (
        manifest.metrics["tuned_alone"]["severity"]["rows"]
        == (manifest.metrics["validation"]["severity"]["rows"])
    )
    assert 0.0 <= manifest.metrics["test"]["siu_referral"]["auc"] <= 1.0
    stages = manifest.stage_seconds  # where the time went
    assert {"preparing", "fine_tuning", "waiting_for_partner", "after"} <= set(stages)
    assert sum(stages.values()) == pytest.approx(manifest.training_seconds, abs=0.1)
    card = (trained_checkpoint / "MODEL_CARD.md").read_text()
    assert manifest.model_version in card and "siu_referral" in card
    assert "decision_offsets.severity: validation macro-F1" in card  # the card says what it chose
    assert "Validation split, the tuned model alone" in card


def test_the_validation_claims_can_be_found_again_and_rescored(
    trained_checkpoint: Path, claims_csv: Path
) -> None:
    """The settings search scores a kept checkpoint on its validation claims again, for its
    paired intervals: the same claims and the tuned model's own figures must come back."""
    loaded = load_checkpoint(trained_checkpoint)
    development, _ = load_claims(claims_csv, loaded.config).split()
    train, validation = split_validation(development, loaded.config.training.validation_fraction)
    data = loaded.manifest.training_data
    assert (len(train), len(validation)) == (data.train_rows, data.validation_rows)
    loaded.predictor.preparer.partner = None
    again = score_predictions(
        loaded.config,
        loaded.predictor.predict_proba(validation.claims),
        validation,
        loaded.predictor.labels,
    )
    recorded = loaded.manifest.metrics["tuned_alone"]
    for task, metrics in recorded.items():
        assert again[task]["rows"] == metrics["rows"]
        assert again[task]["macro_f1"] == pytest.approx(metrics["macro_f1"], abs=0.01)


def test_fine_tuning_changes_the_encoder(trained_checkpoint: Path, claims_csv: Path) -> None:
    """The tuned weights are not a no-op: they differ from the base model's."""
    tuned = load_checkpoint(trained_checkpoint).predictor.model.encoder
    base = BertModel.from_pretrained(str(resolve_base_model("default")))
    tuned_query = tuned.state_dict()["encoder.layer.0.attention.self.query.weight"]
    assert not np.allclose(tuned_query.numpy(), base.state_dict()[
        "encoder.layer.0.attention.self.query.weight"
    ].numpy())  # fmt: skip


def test_same_seed_same_model(trained_checkpoint: Path, claims_csv: Path, tmp_path: Path) -> None:
    # the session's checkpoint: quick_config() on these same claims, trained earlier
    first = Manifest.model_validate_json((trained_checkpoint / MANIFEST).read_bytes())
    second = SpecialistTrainer(quick_config(), show_progress=False).fit(claims_csv).save(tmp_path)
    assert first.model_version == second.model_version

    def weights(manifest: Manifest) -> list:  # the card differs: it states how long training took
        return [f for f in manifest.files if f.path != "MODEL_CARD.md"]

    assert weights(first) == weights(second)


@pytest.mark.parametrize("strategy", [Strategy.last_layers, Strategy.lora])
def test_other_strategies_save_only_what_they_tuned(
    strategy: Strategy, claims_csv: Path, tmp_path: Path
) -> None:
    config = quick_config(max_steps=2, strategy=strategy, last_layers=1, boosted_partner=False)
    manifest = SpecialistTrainer(config, show_progress=False).fit(claims_csv).save(tmp_path / "m")
    from safetensors.torch import load_file

    if strategy is Strategy.last_layers:
        tuned = load_file(tmp_path / "m" / "encoder.safetensors")
        assert all(name.startswith("encoder.layer.5.") for name in tuned)
    else:
        assert not (tmp_path / "m" / "encoder.safetensors").exists()
        assert (tmp_path / "m" / "adapter" / "adapter_model.safetensors").is_file()
        assert 0 < manifest.trainable_parameters < manifest.total_parameters / 5
        adapter = json.loads((tmp_path / "m" / "adapter" / "adapter_config.json").read_text())
        base_name = manifest.base_model.name
        assert adapter["base_model_name_or_path"] == base_name  # no install path
        assert adapter["target_modules"] == sorted(adapter["target_modules"])
    loaded = load_checkpoint(tmp_path / "m")
    assert loaded.manifest.model_version == manifest.model_version


def test_a_full_fine_tune_with_its_word_embeddings_as_pre_trained_saves_and_serves_without_them(
    claims_csv: Path, tmp_path: Path
) -> None:
    config = quick_config(max_steps=2, tune_word_embeddings=False, boosted_partner=False)
    fitted = SpecialistTrainer(config, show_progress=False).fit(claims_csv)
    fitted.save(tmp_path / "m")
    from safetensors.torch import load_file

    query = "encoder.layer.0.attention.self.query.weight"
    tuned = load_file(tmp_path / "m" / "encoder.safetensors")
    assert "embeddings.word_embeddings.weight" not in tuned
    torch.testing.assert_close(tuned[query], fitted.model.encoder.state_dict()[query])
    served = load_checkpoint(tmp_path / "m").predictor.model.encoder
    base = load_encoder(resolve_base_model("default"))
    torch.testing.assert_close(
        served.get_input_embeddings().weight, base.get_input_embeddings().weight
    )
    claims = load_claims(claims_csv, config).claims[:5]
    assert load_checkpoint(tmp_path / "m").predictor.predict_proba(claims)["severity"].shape == (
        5,
        4,
    )


def test_any_hugging_face_encoder_folder_can_be_the_base(claims_csv: Path, tmp_path: Path) -> None:
    """A small BERT of our own, saved as a Hugging Face folder, stands in for any encoder."""
    base = tmp_path / "tiny-bert"
    packaged = resolve_base_model("default")
    BertModel(
        BertConfig(
            vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64,
        )
    ).save_pretrained(base)  # fmt: skip
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (base / name).write_bytes((packaged / name).read_bytes())
    config = quick_config(
        max_steps=2, strategy=Strategy.last_layers, last_layers=1, boosted_partner=False
    )  # what the base changes is the encoder: its partner is tested elsewhere
    config.base_model = str(base)
    SpecialistTrainer(config, show_progress=False).fit(claims_csv).save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    assert manifest["base_model"]["name"] == "tiny-bert"
    loaded = load_checkpoint(tmp_path / "m")
    claims = load_claims(claims_csv, config).claims[:5]
    assert loaded.predictor.predict_proba(claims)["severity"].shape == (5, 4)

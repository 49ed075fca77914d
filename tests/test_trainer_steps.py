"""Each step of a fit on its own, on a few claims and a tiny encoder: preparing the data,
building the model, fine-tuning, calibrating."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertConfig, BertModel, PreTrainedTokenizerBase

from claims.data.dataset import DataError, LabelledClaims, frame_to_claims
from claims.domain.config import load_config
from claims.model.encoder import load_tokenizer, resolve_base_model
from claims.model.features import StructuredFeatures
from claims.model.network import Calibration
from claims.model.packing import PACKED_ATTENTION
from claims.model.predictor import TunedPredictor
from schemas.config import SpecialistConfig, Strategy
from tests.conftest import quick_config
from training.calibration import (
    calibrate,
    candidate_predictor,
    fit_decision_offsets,
    fit_temperatures,
)
from training.data import TrainingData, prepare_data, split_validation
from training.fine_tuning import build_model, fine_tune, mean_loss, runs_bf16
from training.labels import IGNORE, class_weights

TINY = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
CPU = torch.device("cpu")


def tiny_encoder() -> BertModel:
    """Each with a config of its own: switching attention changes the config object."""
    torch.manual_seed(0)
    return BertModel(BertConfig(**TINY, intermediate_size=64, attn_implementation="sdpa"))


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return load_tokenizer(resolve_base_model("default"))


@pytest.fixture
def config() -> SpecialistConfig:
    return quick_config(max_length=32, batch_size=16, max_steps=None, evaluations_per_epoch=4)


@pytest.fixture
def claims(claims_frame: pd.DataFrame, config: SpecialistConfig) -> LabelledClaims:
    return frame_to_claims(claims_frame.head(160), config, source="synthetic")


@pytest.fixture
def data(
    config: SpecialistConfig, claims: LabelledClaims, tokenizer: PreTrainedTokenizerBase
) -> TrainingData:
    return prepare_data(config, claims, tokenizer, "claims.csv")


def test_the_data_is_split_three_ways_and_only_the_training_rows_teach(
    data: TrainingData, claims: LabelledClaims, config: SpecialistConfig
) -> None:
    development, test = claims.split()
    train, validation = split_validation(development, config.training.validation_fraction)
    ids = [[c.claim_id for c in split.claims] for split in (data.train.claims, train)]
    assert ids[0] == ids[1]
    assert data.validation.claims.claims == validation.claims
    assert data.test.claims == test.claims and len(test) and len(validation)
    assert data.features == StructuredFeatures.fit(
        train.claims, config.input.numeric, config.input.categorical
    )
    for task, names in data.labels.items():
        targets = data.train.targets[task].numpy()
        assert data.class_weights[task] == class_weights(targets, len(names))
    assert data.train.tokens.ids.shape == (len(train), config.training.max_length)
    assert data.validation.structured.shape == (len(validation), data.features.dimension)


def test_too_few_rows_outside_the_test_split_is_a_data_error(
    claims: LabelledClaims, config: SpecialistConfig, tokenizer: PreTrainedTokenizerBase
) -> None:
    few = claims.subset(range(8))
    with pytest.raises(DataError, match=r"tiny\.csv: only"):
        prepare_data(config, few, tokenizer, "tiny.csv")


def test_the_model_trains_what_the_strategy_tunes_and_a_head_per_task(
    data: TrainingData, config: SpecialistConfig
) -> None:
    settings = config.training.model_copy(update={"strategy": Strategy.head})
    model = build_model(tiny_encoder(), settings, data.features.dimension, data.label_counts, CPU)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert {task: head[-1].out_features for task, head in model.heads.items()} == (
        data.label_counts
    )
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("heads."))


def test_full_fine_tuning_may_leave_the_word_embeddings_as_pre_trained(
    data: TrainingData, config: SpecialistConfig
) -> None:
    settings = config.training.model_copy(
        update={"strategy": Strategy.full, "tune_word_embeddings": False}
    )
    model = build_model(tiny_encoder(), settings, data.features.dimension, data.label_counts, CPU)
    frozen = model.encoder.get_input_embeddings().weight
    assert not frozen.requires_grad
    others = [p for p in model.encoder.parameters() if p is not frozen]
    assert others and all(p.requires_grad for p in others)


def test_fine_tuning_keeps_the_step_with_the_lowest_validation_loss(
    data: TrainingData, config: SpecialistConfig
) -> None:
    settings = config.training.model_copy(update={"epochs": 2, "patience": 100})
    model = build_model(tiny_encoder(), settings, data.features.dimension, data.label_counts, CPU)
    steps: list[tuple[int, int]] = []
    kept = fine_tune(
        model,
        data.train,
        data.validation,
        data.class_weights,
        settings,
        on_step=lambda step, total: steps.append((step, total)),
    )
    total = 2 * -(-len(data.train.tokens) // settings.batch_size)
    assert steps == [(step, total) for step in range(1, total + 1)]
    assert not model.training
    match = re.fullmatch(r"step (\d+) \(epoch \d\): lowest validation loss ([0-9.]+)", kept)
    assert match, kept
    loss_functions = {
        task: torch.nn.CrossEntropyLoss(weight=torch.tensor(w), ignore_index=IGNORE)
        for task, w in data.class_weights.items()
    }
    # the kept step's weights are back in place, whichever step came last
    bf16 = runs_bf16(settings, CPU)
    assert mean_loss(model, data.validation, loss_functions, bf16) == pytest.approx(
        float(match[2]), abs=1e-4
    )


def test_fine_tuning_stops_at_max_steps(data: TrainingData, config: SpecialistConfig) -> None:
    settings = config.training.model_copy(update={"max_steps": 3})
    model = build_model(tiny_encoder(), settings, data.features.dimension, data.label_counts, CPU)
    steps: list[int] = []
    fine_tune(
        model,
        data.train,
        data.validation,
        data.class_weights,
        settings,
        on_step=lambda step, total: steps.append(total),
    )
    assert steps == [3, 3, 3]


def test_calibrating_leaves_the_models_attention_as_trained(
    data: TrainingData, config: SpecialistConfig
) -> None:
    model = build_model(
        tiny_encoder(), config.training, data.features.dimension, data.label_counts, CPU
    )
    # a serving predictor switches an encoder that can pack: the trainer's must not
    serving = build_model(
        tiny_encoder(), config.training, data.features.dimension, data.label_counts, CPU
    )
    TunedPredictor(
        serving, data.tokenizer, data.features, Calibration(data.class_weights), data.labels,
        data.max_length, "served",
    )  # fmt: skip
    assert serving.encoder.config._attn_implementation == PACKED_ATTENTION

    predictor = candidate_predictor(model, data)
    probabilities, notes = calibrate(predictor, data.validation)
    assert model.encoder.config._attn_implementation == "sdpa"
    assert not predictor.packs
    assert set(notes) == {"calibration"}
    for task, values in probabilities.items():
        assert values.shape == (len(data.validation.tokens), data.label_counts[task])
        np.testing.assert_allclose(values.sum(axis=1), 1.0, rtol=1e-5)
        assert predictor.calibration.temperatures[task] != 1.0


def test_a_temperature_undoes_overconfident_logits_and_skips_an_unlabelled_task() -> None:
    rng = np.random.default_rng(1)
    honest = rng.normal(0, 1.5, (4000, 3))
    probabilities = np.exp(honest) / np.exp(honest).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(3, p=row) for row in probabilities])
    calibration = Calibration({"severity": [1.0] * 3, "unlabelled": [1.0] * 3})
    logits = torch.from_numpy(3 * honest).float()
    fit_temperatures(
        calibration,
        {"severity": logits, "unlabelled": logits},
        {"severity": torch.from_numpy(truth), "unlabelled": torch.full((4000,), IGNORE)},
    )
    assert calibration.temperatures["severity"] == pytest.approx(3.0, rel=0.1)
    assert calibration.temperatures["unlabelled"] == 1.0


def test_decision_offsets_raise_validation_macro_f1_on_the_labelled_rows_only() -> None:
    config = load_config()
    rng = np.random.default_rng(2)
    truth = (rng.random(600) < 0.1).astype(int)  # a rare positive label
    scores = np.clip(0.05 + 0.3 * truth + rng.normal(0, 0.1, 600), 0.01, 0.99)
    probabilities = np.column_stack([1 - scores, scores])
    targets = torch.from_numpy(truth)
    targets[:100] = IGNORE
    calibration = Calibration({"siu_referral": [1.0, 1.0], "severity": [1.0] * 4})
    notes = fit_decision_offsets(
        config,
        calibration,
        {"siu_referral": probabilities, "severity": np.full((600, 4), 0.25)},
        {"siu_referral": targets, "severity": torch.full((600,), IGNORE)},
    )
    assert set(notes) == {"decision_offsets.siu_referral"}
    note = notes["decision_offsets.siu_referral"]
    before, after, plain, searched = map(float, re.findall(r"[0-9.]+", note)[1:])
    assert after > before and searched > plain and note.endswith("kept")
    offsets = calibration.decision_offsets["siu_referral"]
    assert offsets[1] > offsets[0]  # the rare label is chosen more often
    assert not calibration.decision_offsets["severity"].any()


def test_decision_offsets_that_only_fit_the_validation_noise_are_left_out() -> None:
    """Calibrated probabilities of five balanced labels on 120 claims: the most probable label
    is already the best choice, and offsets searched on these rows raise their macro-F1 only by
    fitting their noise, which the rows held out of each search reveal."""
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.full(5, 0.7), size=120)
    truth = np.array([rng.choice(5, p=row) for row in probabilities])
    calibration = Calibration({"claim_type": [1.0] * 5})
    notes = fit_decision_offsets(
        load_config(),
        calibration,
        {"claim_type": probabilities},
        {"claim_type": torch.from_numpy(truth)},
    )
    before, after, plain, searched = map(
        float, re.findall(r"[0-9.]+", notes["decision_offsets.claim_type"])[1:]
    )
    assert after > before  # in sample the search always finds something
    assert searched <= plain and notes["decision_offsets.claim_type"].endswith("left out")
    assert not calibration.decision_offsets["claim_type"].any()

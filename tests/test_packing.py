"""Packed passes on the CPU answer as padded passes do, and an encoder that cannot pack pads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.functional import scaled_dot_product_attention
from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from claims.data.dataset import load_claims
from claims.model.checkpoint import load_checkpoint
from claims.model.encoder import load_encoder, load_tokenizer, mean_pool, resolve_base_model
from claims.model.packing import (
    PACKED_ATTENTION,
    PackedTokens,
    enable_packing,
    packed_embeddings,
    packing_pays,
)
from claims.model.tokens import tokenize
from tests.conftest import quick_config

TEXTS = [
    "Rear-ended at a red light, neck pain since.",
    "",
    "Water came through the kitchen ceiling " * 60,  # truncated at the max length
    "x",
    "Hail dented the roof and both cars in the drive.",
]
TINY = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return load_tokenizer(resolve_base_model("default"))


def padded_embeddings(encoder: torch.nn.Module, tokens, rows: np.ndarray) -> torch.Tensor:  # type: ignore[no-untyped-def]
    input_ids, mask = tokens.batch(rows)
    with torch.inference_mode():
        return mean_pool(encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state, mask)


def test_a_packed_pass_embeds_each_claim_as_a_padded_pass_does(tokenizer) -> None:  # type: ignore[no-untyped-def]
    encoder = load_encoder(resolve_base_model("default")).eval()
    assert enable_packing(encoder, tokenizer, 64)
    assert encoder.config._attn_implementation == PACKED_ATTENTION
    tokens = tokenize(tokenizer, TEXTS, 64)
    rows = np.array([2, 0, 4, 1, 3])  # any order, lengths mixed
    packed = PackedTokens.of(tokens, rows)
    assert packed.input_ids.shape == (1, int(tokens.lengths.sum()))
    assert packed.lengths == tokens.lengths[rows].tolist()
    with torch.inference_mode():
        embeddings = packed_embeddings(encoder, packed)
    expected = padded_embeddings(encoder, tokens, rows)  # the same encoder pads as before
    torch.testing.assert_close(embeddings, expected, atol=1e-5, rtol=1e-5)


def test_claims_are_packed_only_where_padding_would_cost_more_than_a_tenth() -> None:
    lengths = np.array([10, 30, 11, 29])
    assert packing_pays(lengths, [np.arange(4)])  # one pass: (4 * 30 - 80) / 120 padding
    assert not packing_pays(lengths, [np.array([0, 2]), np.array([1, 3])])  # 2 of 82 padding
    assert not packing_pays(np.array([12]), [np.array([0])])  # one claim has no padding


@pytest.mark.parametrize("claim_lengths", [None, [3, 4]])
def test_on_a_cpu_attention_runs_in_fp32_under_bf16_autocast(
    claim_lengths: list[int] | None,
) -> None:
    """There SDPA is faster in fp32; padded (None) or packed, the answer is fp32 SDPA's."""
    query, key, value = (torch.randn(1, 2, 7, 4).to(torch.bfloat16) for _ in range(3))
    module = torch.nn.Module()
    module.is_causal = False
    attention = ALL_ATTENTION_FUNCTIONS[PACKED_ATTENTION]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = attention(module, query, key, value, None, claim_lengths, scaling=0.5)
    spans = [(0, 7)] if claim_lengths is None else [(0, 3), (3, 7)]
    expected = torch.cat(
        [
            scaled_dot_product_attention(
                *(t[:, :, start:end].float() for t in (query, key, value)), scale=0.5
            )
            for start, end in spans
        ],
        dim=2,
    ).transpose(1, 2)
    assert output.dtype == torch.float32
    torch.testing.assert_close(output, expected)


def test_an_encoder_that_counts_positions_otherwise_stays_padded(tokenizer) -> None:  # type: ignore[no-untyped-def]
    """RoBERTa's positions start after its padding id: packed, they would be wrong."""
    encoder = RobertaModel(RobertaConfig(**TINY, intermediate_size=64, pad_token_id=0)).eval()
    tokens = tokenize(tokenizer, TEXTS, 64)
    rows = np.arange(len(TEXTS))
    before = padded_embeddings(encoder, tokens, rows)
    assert not enable_packing(encoder, tokenizer, 64)
    assert encoder.config._attn_implementation == "sdpa"
    torch.testing.assert_close(padded_embeddings(encoder, tokens, rows), before)


def test_an_encoder_without_sdpa_stays_as_it_is(tokenizer) -> None:  # type: ignore[no-untyped-def]
    config = BertConfig(**TINY, intermediate_size=64, attn_implementation="eager")
    encoder = BertModel(config).eval()
    assert not enable_packing(encoder, tokenizer, 64)
    assert encoder.config._attn_implementation == "eager"


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_specialist_answers_the_same_packed_or_padded(
    trained_checkpoint: Path, claims_csv: Path, precision: str
) -> None:
    claims = load_claims(claims_csv, quick_config()).claims[:40]
    predictor = load_checkpoint(trained_checkpoint).predictor
    predictor.use_precision(precision)
    assert predictor.packs  # the packaged base model packs
    packed = predictor.predict_proba(claims)
    predictor.packs = False
    padded = predictor.predict_proba(claims)
    for task, probabilities in packed.items():
        # fp32 differs only by summation order; bf16 rounds the products' inputs as padded does
        atol = 1e-5 if precision == "fp32" else 5e-3
        np.testing.assert_allclose(probabilities, padded[task], atol=atol)

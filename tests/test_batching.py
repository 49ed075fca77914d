"""Token ids in one padded array: the same ids as the tokenizer's own call, batches by slicing."""

from __future__ import annotations

import numpy as np
import pytest

from claims.model.encoder import load_tokenizer, resolve_base_model
from claims.model.tokens import length_sorted_batches, padded_batches, tokenize

TEXTS = [
    "Rear-ended at a red light, neck pain since.",
    "",
    "Water came through the kitchen ceiling " * 60,  # far past any max length
    "Ünïcödé café — 你好, naïve façade",
    "x",
]


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return load_tokenizer(resolve_base_model("default"))


@pytest.mark.parametrize("max_length", [4, 32, 512])
def test_the_ids_are_the_tokenizers_own(tokenizer, max_length: int) -> None:  # type: ignore[no-untyped-def]
    tokens = tokenize(tokenizer, TEXTS, max_length)
    expected = tokenizer(TEXTS, truncation=True, max_length=max_length)["input_ids"]
    assert [list(tokens.ids[i, : tokens.lengths[i]]) for i in range(len(TEXTS))] == expected
    assert tokens.ids.shape == (len(TEXTS), max(len(ids) for ids in expected))
    padding = np.arange(tokens.ids.shape[1]) >= tokens.lengths[:, None]
    assert (tokens.ids[padding] == tokenizer.pad_token_id).all()


def test_a_batch_is_padded_to_its_own_longest_text(tokenizer) -> None:  # type: ignore[no-untyped-def]
    tokens = tokenize(tokenizer, TEXTS, 64)
    seen = []
    for rows, input_ids, mask in padded_batches(tokens, batch_size=2):
        lengths = tokens.lengths[rows.numpy()]
        assert input_ids.shape == mask.shape == (len(rows), lengths.max())
        assert mask.sum(dim=1).tolist() == lengths.tolist()
        for row, ids, row_mask in zip(rows.tolist(), input_ids, mask, strict=True):
            assert ids[row_mask.bool()].tolist() == list(tokens.ids[row, : tokens.lengths[row]])
        seen += rows.tolist()
    assert sorted(seen) == list(range(len(TEXTS)))


def test_batches_group_similar_lengths() -> None:
    lengths = np.array([9, 2, 7, 3, 8, 1])
    batches = length_sorted_batches(lengths, 2)
    assert [sorted(lengths[rows].tolist()) for rows in batches] == [[1, 2], [3, 7], [8, 9]]


def test_no_texts_make_an_empty_matrix(tokenizer) -> None:  # type: ignore[no-untyped-def]
    tokens = tokenize(tokenizer, [], 32)
    assert len(tokens) == 0 and tokens.ids.shape == (0, 0)
    assert list(padded_batches(tokens, 8)) == []

"""Tokenising narratives once and padding each batch only to its own longest claim."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase


def tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> list[list[int]]:
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    return encoded["input_ids"]


def pad(token_ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


def length_sorted_batches(token_ids: Sequence[Sequence[int]], batch_size: int) -> list[np.ndarray]:
    """Claims of similar length together, so little compute is spent on padding."""
    order = np.argsort([len(ids) for ids in token_ids], kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def padded_batches(
    token_ids: Sequence[Sequence[int]], batch_size: int, pad_id: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(row indices, input ids, attention mask) per batch, for inference in any order."""
    for rows in length_sorted_batches(token_ids, batch_size):
        input_ids, attention_mask = pad([token_ids[i] for i in rows], pad_id)
        yield torch.from_numpy(rows), input_ids, attention_mask


def shuffled_length_batches(
    token_ids: Sequence[Sequence[int]], batch_size: int, rng: np.random.Generator, pool: int = 50
) -> Iterator[np.ndarray]:
    """Random batches for training, each drawn from a pool of similar lengths."""
    order = rng.permutation(len(token_ids))
    batches: list[np.ndarray] = []
    chunk = batch_size * pool
    for start in range(0, len(order), chunk):
        window = order[start : start + chunk]
        window = window[np.argsort([len(token_ids[i]) for i in window], kind="stable")]
        batches += [window[i : i + batch_size] for i in range(0, len(window), batch_size)]
    for index in rng.permutation(len(batches)):
        yield batches[index]

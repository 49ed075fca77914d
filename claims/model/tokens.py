"""Tokenising narratives once and padding each batch only to its own longest claim.

Token ids live in one padded array per set of texts, so a batch is an array slice: at GPU
speed a Python loop over claims, in tokenising or in padding, would bound the whole run.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class TokenMatrix:
    """Token ids of many texts: row i holds text i's ids, then padding to the longest text."""

    ids: np.ndarray  # (texts, longest) int32
    lengths: np.ndarray  # (texts,) int32

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(input ids, attention mask) of these rows, padded to the longest of them."""
        lengths = self.lengths[rows]
        width = int(lengths.max()) if len(rows) else 0
        input_ids = torch.from_numpy(self.ids[rows, :width].astype(np.int64))
        mask = torch.from_numpy((np.arange(width) < lengths[:, None]).astype(np.int64))
        return input_ids, mask


_truncating: weakref.WeakKeyDictionary[PreTrainedTokenizerBase, dict[int, Tokenizer]] = (
    weakref.WeakKeyDictionary()
)
_truncating_lock = threading.Lock()


def _fast_tokenizer(tokenizer: PreTrainedTokenizerBase, max_length: int) -> Tokenizer | None:
    """A copy of the Rust tokenizer that truncates as `tokenizer(..., truncation=True)` does:
    calling it directly skips the per-text Python dictionaries that transformers builds, a third
    of tokenising. None for a tokenizer without a Rust backend."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    with _truncating_lock:
        per_length = _truncating.setdefault(tokenizer, {})
        if max_length not in per_length:
            copy = Tokenizer.from_str(backend.to_str())
            copy.no_padding()
            copy.enable_truncation(max_length, direction=tokenizer.truncation_side)
            per_length[max_length] = copy
        return per_length[max_length]


def tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> TokenMatrix:
    pad_id = tokenizer.pad_token_id or 0
    fast = _fast_tokenizer(tokenizer, max_length)
    if fast is None:
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
        rows = encoded["input_ids"]
    else:
        rows = [encoding.ids for encoding in fast.encode_batch_fast(list(texts))]  # no offsets
    lengths = np.fromiter((len(ids) for ids in rows), dtype=np.int32, count=len(rows))
    width = int(lengths.max()) if len(rows) else 0
    ids = np.full((len(rows), width), pad_id, dtype=np.int32)
    ids[np.arange(width) < lengths[:, None]] = np.fromiter(
        itertools.chain.from_iterable(rows), dtype=np.int32, count=int(lengths.sum())
    )
    return TokenMatrix(ids, lengths)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """To a GPU from page-locked memory, without waiting: a plain copy would wait for the
    kernels before it, and the CPU could never prepare a batch ahead."""
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Claims of similar length together, so little compute is spent on padding."""
    order = np.argsort(lengths, kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def padded_batches(
    tokens: TokenMatrix, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(row indices, input ids, attention mask) per batch, for inference in any order."""
    for rows in length_sorted_batches(tokens.lengths, batch_size):
        input_ids, attention_mask = tokens.batch(rows)
        yield torch.from_numpy(rows), input_ids, attention_mask


def shuffled_length_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, pool: int = 50
) -> Iterator[np.ndarray]:
    """Random batches for training, each drawn from a pool of similar lengths."""
    order = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    chunk = batch_size * pool
    for start in range(0, len(order), chunk):
        window = order[start : start + chunk]
        window = window[np.argsort(lengths[window], kind="stable")]
        batches += [window[i : i + batch_size] for i in range(0, len(window), batch_size)]
    for index in rng.permutation(len(batches)):
        yield batches[index]

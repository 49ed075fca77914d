"""Packed passes: on a CPU the claims of a pass run end to end, with no padding.

A padded pass carries every claim's padding through every layer: sorted by length, the demo's
claims are still about a fifth padding in passes of 8, and the matrix products take two thirds
of a pass. Packed, the products see only real tokens. Only attention must know where one claim
ends, so it runs claim by claim, through transformers' attention interface; everything else
in the encoder is per token. A GPU pads instead: there a loop over claims would launch kernels
claim by claim and layer by layer.

An encoder is packed only where a packed pass gives what a padded one gives (`enable_packing`);
any other stays padded. Claims are packed only where padding would cost more than attention
claim by claim does (`packing_pays`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.functional import scaled_dot_product_attention
from transformers import AttentionInterface, PreTrainedModel, PreTrainedTokenizerBase
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from claims.model.encoder import mean_pool
from claims.model.tokens import TokenMatrix, tokenize

PACKED_ATTENTION = "claims_packed"
PROBE_TEXTS = (
    "Hail.",
    "Rear-ended at a red light; bumper and tail lights damaged, no injuries reported.",
    "A pipe burst in the upstairs bathroom overnight and water came through the kitchen "
    "ceiling, soaking the floor, two cabinets and the insured's laptop before the mains "
    "were shut off by a neighbour.",
)
PROBE_TOLERANCE = 1e-4  # fp32 noise is about 1e-6; a wrong layout moves embeddings by 1e-2
PADDING_WORTH_PACKING = 0.1  # of the tokens that padded passes would run


@dataclass(frozen=True)
class PackedTokens:
    """The token ids of some claims laid end to end, each claim's positions counted from 0."""

    input_ids: torch.Tensor  # (1, tokens)
    position_ids: torch.Tensor  # (1, tokens)
    claim_of_token: torch.Tensor  # (tokens,)
    lengths: list[int]  # tokens per claim, in order

    @classmethod
    def of(cls, tokens: TokenMatrix, rows: np.ndarray) -> PackedTokens:
        lengths = tokens.lengths[rows]
        real = np.arange(int(lengths.max())) < lengths[:, None]
        ids = tokens.ids[rows, : real.shape[1]][real]
        return cls(
            input_ids=torch.from_numpy(ids.astype(np.int64))[None],
            position_ids=torch.from_numpy(np.nonzero(real)[1])[None],
            claim_of_token=torch.from_numpy(np.repeat(np.arange(len(rows)), lengths)),
            lengths=lengths.tolist(),
        )

    def to(self, device: torch.device) -> PackedTokens:
        return PackedTokens(
            self.input_ids.to(device),
            self.position_ids.to(device),
            self.claim_of_token.to(device),
            self.lengths,
        )


def packing_pays(lengths: np.ndarray, batches: list[np.ndarray]) -> bool:
    """Whether padded passes over these batches would be more than a tenth padding: packing
    pays on padding-heavy micro-batches and costs on passes sorted by length (measurements in
    docs/serving-experiments.md)."""
    padded = sum(len(rows) * int(lengths[rows].max()) for rows in batches if len(rows))
    return padded > 0 and 1 - int(lengths.sum()) / padded > PADDING_WORTH_PACKING


def _attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    claim_lengths: list[int] | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """`sdpa` over a padded pass, claim by claim over a packed one.

    On a CPU it runs in fp32 even under bf16 autocast, where SDPA measured faster in fp32
    than in bf16 (docs/serving-experiments.md)."""
    if query.device.type != "cpu":
        return _sdpa(module, query, key, value, attention_mask, claim_lengths, **kwargs)
    with torch.autocast("cpu", enabled=False):
        return _sdpa(
            module,
            query.float(),
            key.float(),
            value.float(),
            attention_mask,
            claim_lengths,
            **kwargs,
        )


def _sdpa(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    claim_lengths: list[int] | None,
    **kwargs: Any,  # transformers' attention keywords, passed on as they come
) -> tuple[torch.Tensor, None]:
    if claim_lengths is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    per_claim = [
        scaled_dot_product_attention(q, k, v, scale=kwargs.get("scaling"))
        for q, k, v in zip(
            query.split(claim_lengths, dim=2),
            key.split(claim_lengths, dim=2),
            value.split(claim_lengths, dim=2),
            strict=True,
        )
    ]
    return torch.cat(per_claim, dim=2).transpose(1, 2), None


AttentionInterface.register(PACKED_ATTENTION, _attention)
AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)


def packed_embeddings(encoder: nn.Module, packed: PackedTokens) -> torch.Tensor:
    """Each claim's mean-pooled embedding, (claims, hidden), from one packed pass."""
    hidden = encoder(
        input_ids=packed.input_ids, position_ids=packed.position_ids, claim_lengths=packed.lengths
    ).last_hidden_state[0]
    sums = hidden.new_zeros(len(packed.lengths), hidden.shape[-1])
    sums.index_add_(0, packed.claim_of_token, hidden)
    return sums / torch.tensor(packed.lengths, dtype=hidden.dtype, device=hidden.device)[:, None]


def enable_packing(
    encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> bool:
    """Switches the encoder to the attention above and keeps it there if packed passes embed
    the probe texts as padded ones do; otherwise puts the encoder back and answers False.

    Only an encoder that runs `sdpa` through transformers' attention interface qualifies, so
    its padded passes stay `sdpa` (in fp32 on a CPU, see `_attention`). Positions counted from
    0 are BERT's; an encoder that counts them otherwise (RoBERTa starts after its padding id)
    fails the probe."""
    if getattr(encoder.config, "_attn_implementation", None) != "sdpa":
        return False
    tokens = tokenize(tokenizer, PROBE_TEXTS, max_length)
    rows = np.arange(len(PROBE_TEXTS))
    device = next(encoder.parameters()).device
    input_ids, mask = (tensor.to(device) for tensor in tokens.batch(rows))
    try:
        encoder.set_attn_implementation(PACKED_ATTENTION)
        with torch.inference_mode():
            hidden = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
            padded = mean_pool(hidden, mask)
            packed = packed_embeddings(encoder, PackedTokens.of(tokens, rows).to(device))
        agrees = bool((padded - packed).abs().max() <= PROBE_TOLERANCE)
    except Exception:  # whatever an architecture raises here, it cannot run packed
        agrees = False
    if not agrees:
        encoder.set_attn_implementation("sdpa")
    return agrees

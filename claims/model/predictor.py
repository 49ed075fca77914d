"""Turning claims into calibrated probabilities per task: the tuned specialist or the base model.

Both answer the same question the same way, so serving can put one in place of the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from claims.model.base_models import embedding_prefix
from claims.model.encoder import base_model_info, load_encoder, load_tokenizer, mean_pool
from claims.model.features import StructuredFeatures
from claims.model.network import Calibration, SpecialistModel, decide_labels
from claims.model.packing import PackedTokens, enable_packing, packed_embeddings, packing_pays
from claims.model.stack import TUNED, BoostedPartner, Members
from claims.model.tokens import (
    TokenMatrix,
    length_sorted_batches,
    padded_batches,
    to_device,
    tokenize,
)
from schemas.checkpoint import BaseModelInfo
from schemas.claim import Claim
from schemas.config import TaskConfig, TaskKind
from schemas.scoring import Precision

Source = Literal["tuned", "base"]
ZERO_SHOT_SCALE = 20.0  # cosine similarities spread into probabilities, as in contrastive training


class Predictor(Protocol):
    source: Source
    model_version: str
    labels: dict[str, list[str]]

    def predict_proba(self, claims: Sequence[Claim]) -> dict[str, np.ndarray]:
        """Per task, an array of shape (claims, labels) whose rows sum to one."""
        ...

    def decide(self, task: str, probabilities: np.ndarray) -> np.ndarray:
        """The label index chosen for each row of a task's probabilities."""
        ...


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX); elsewhere it is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


@dataclass
class PreparedClaims:
    """Claims as the model's inputs, in input order: everything computed before the encoder,
    which batch scoring runs beside the encoder or in other processes."""

    tokens: TokenMatrix
    structured: np.ndarray  # (claims, features) float32
    partner: Members | None = None  # the stack's other members' probabilities

    def __len__(self) -> int:
        return len(self.tokens)


class ClaimPreparer:
    """The CPU work before the encoder: tokens, structured features and the stack's other
    members' answers. Holds no torch model, so a pool of processes can each keep one."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        features: StructuredFeatures,
        max_length: int,
        partner: BoostedPartner | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.features = features
        self.max_length = max_length
        self.partner = partner

    def prepare(self, claims: Sequence[Claim]) -> PreparedClaims:
        texts = [claim.description for claim in claims]
        structured = self.features.transform(claims)
        partner = None
        if self.partner is not None:
            partner = self.partner.predict_proba(self.partner.inputs(texts, structured))
        return PreparedClaims(tokenize(self.tokenizer, texts, self.max_length), structured, partner)


class TunedPredictor:
    source: Source = "tuned"

    def __init__(
        self,
        model: SpecialistModel,
        tokenizer: PreTrainedTokenizerBase,
        features: StructuredFeatures,
        calibration: Calibration,
        labels: dict[str, list[str]],
        max_length: int,
        model_version: str,
        batch_size: int = 64,
        partner: BoostedPartner | None = None,
        *,
        pack: bool = True,
    ) -> None:
        """`partner`: the stack's other members and its weights, if the trainer fitted them.
        Everything before the encoder is the `preparer`'s: callers read or change it there.
        `pack`: switch the model's encoder to packed attention where it embeds as padded
        passes do (`enable_packing`); False leaves the model's attention as it is."""
        self.model = model.eval()
        self.preparer = ClaimPreparer(tokenizer, features, max_length, partner)
        self.calibration = calibration
        self.labels = labels
        self.model_version = model_version
        self.batch_size = batch_size
        self.bf16 = False  # on the CPU; a GPU always runs bf16; see use_precision
        # on a CPU; a loaded checkpoint's encoder is a plain transformers model (LoRA merged)
        self.packs = (
            pack
            and isinstance(model.encoder, PreTrainedModel)
            and enable_packing(model.encoder, tokenizer, max_length)
        )

    def use_precision(self, precision: Precision) -> None:
        """bf16 (auto: where the CPU has it natively) runs the matrix products in bf16 under
        autocast, as a GPU always does. Their weights are then stored in bf16, the very values
        autocast would cast them to at every pass: the same answers, without rereading the
        fp32 weights, which took a third of a one-claim pass on the CPU. Call it once, after
        moving the model to its device; bf16 weights do not go back to fp32."""
        linears = [m for m in self.model.modules() if isinstance(m, torch.nn.Linear)]
        self.bf16 = precision == "bf16" or (precision == "auto" and cpu_has_bf16())
        if self.running_precision == "bf16":
            for linear in linears:
                linear.to(torch.bfloat16)
        elif any(linear.weight.dtype != torch.float32 for linear in linears):
            raise ValueError("this model's weights are in bf16 already: load it again for fp32")

    @property
    def running_precision(self) -> Literal["bf16", "fp32"]:
        """What the model's passes run in: bf16 on a GPU or when chosen, else fp32."""
        on_gpu = next(self.model.parameters()).device.type == "cuda"
        return "bf16" if self.bf16 or on_gpu else "fp32"

    def logits(self, claims: Sequence[Claim] | PreparedClaims) -> dict[str, torch.Tensor]:
        """Uncalibrated logits in input order; training uses them to fit the calibration."""
        prepared = claims if isinstance(claims, PreparedClaims) else self.preparer.prepare(claims)
        device = next(self.model.parameters()).device
        batches = length_sorted_batches(prepared.tokens.lengths, self.batch_size)
        packed = (
            self.packs and device.type == "cpu" and packing_pays(prepared.tokens.lengths, batches)
        )
        outputs: dict[str, torch.Tensor] = {
            task: torch.empty(len(prepared), len(names)) for task, names in self.labels.items()
        }
        with (
            torch.inference_mode(),
            torch.autocast(
                device_type=device.type,
                dtype=torch.bfloat16,
                enabled=self.running_precision == "bf16",
            ),
        ):
            for rows in batches:
                if packed:
                    tokens = PackedTokens.of(prepared.tokens, rows)
                    embeddings = packed_embeddings(self.model.encoder, tokens)
                else:
                    input_ids, mask = (to_device(t, device) for t in prepared.tokens.batch(rows))
                    embeddings = self.model.embed(input_ids, mask)
                structured = to_device(torch.from_numpy(prepared.structured[rows]), device)
                for task, values in self.model.classify(embeddings, structured).items():
                    outputs[task][rows] = values.float().cpu()
        return outputs

    def predict_proba(self, claims: Sequence[Claim] | PreparedClaims) -> dict[str, np.ndarray]:
        prepared = claims if isinstance(claims, PreparedClaims) else self.preparer.prepare(claims)
        tuned = self._tuned_probabilities(prepared)
        partner = self.preparer.partner
        if partner is None:
            return tuned
        if prepared.partner is None:
            raise ValueError("claims were prepared without the partner's inputs")
        return partner.blend(tuned, prepared.partner)

    def _tuned_probabilities(self, prepared: PreparedClaims) -> dict[str, np.ndarray]:
        return {
            task: self.calibration.probabilities(task, values).numpy()
            for task, values in self.logits(prepared).items()
        }

    def member_probabilities(self, claims: Sequence[Claim]) -> Members:
        """Each member's own answer (the tuned encoder's calibrated, the others' as fitted),
        which the stack pools: what evaluation scores beside it."""
        prepared = self.preparer.prepare(claims)
        members = {TUNED: self._tuned_probabilities(prepared)}
        return members if prepared.partner is None else members | prepared.partner

    def decide(self, task: str, probabilities: np.ndarray) -> np.ndarray:
        return self.calibration.decide(task, probabilities)


def label_descriptions(task: TaskConfig, labels: Sequence[str]) -> list[str]:
    """What the base model compares a claim with: the config's words, else the label's name."""
    topic = task.name.replace("_", " ")
    descriptions = []
    for label in labels:
        if label in task.labels:
            descriptions.append(task.labels[label])
        elif task.kind is TaskKind.binary:
            positive = label == task.positive_label
            descriptions.append(f"{topic}: {'yes' if positive else 'no'}")
        else:
            descriptions.append(label.replace("_", " "))
    return descriptions


class ZeroShotPredictor:
    """The general base model with no tuning: claim and label descriptions embedded and compared."""

    source: Source = "base"

    def __init__(
        self,
        encoder: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        base_info: BaseModelInfo,
        tasks: Sequence[TaskConfig],
        labels: dict[str, list[str]],
        max_length: int,
        batch_size: int = 64,
        prefix: str = "",
    ) -> None:
        self.encoder = encoder.eval()
        self.tokenizer = tokenizer
        self.prefix = prefix
        self.labels = labels
        self.max_length = max_length
        self.batch_size = batch_size
        self.model_version = f"base:{base_info.name}@{base_info.sha256[:12]}"
        self.label_vectors = {
            task.name: self.embed(label_descriptions(task, labels[task.name])) for task in tasks
        }

    @classmethod
    def from_base(
        cls,
        base_path: Path,
        tasks: Sequence[TaskConfig],
        labels: dict[str, list[str]],
        max_length: int,
    ) -> ZeroShotPredictor:
        """The base model as it lies on disk, ready to answer the given tasks, with the prefix
        its catalogue entry says it expects (E5's "query: ")."""
        return cls(
            load_encoder(base_path),
            load_tokenizer(base_path),
            base_model_info(base_path),
            tasks,
            labels,
            max_length,
            prefix=embedding_prefix(base_path),
        )

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit vectors for the texts, each after the model's prefix: claims and label
        descriptions alike, since both sides of the comparison are the same kind of text."""
        tokens = tokenize(self.tokenizer, [self.prefix + text for text in texts], self.max_length)
        vectors = torch.empty(len(texts), self.encoder.config.hidden_size)
        batches = padded_batches(tokens, self.batch_size)
        with torch.inference_mode():
            for rows, input_ids, mask in batches:
                hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
                vectors[rows] = mean_pool(hidden, mask).float()
        return torch.nn.functional.normalize(vectors, dim=-1)

    def predict_proba(self, claims: Sequence[Claim]) -> dict[str, np.ndarray]:
        claim_vectors = self.embed([claim.description for claim in claims])
        return {
            task: torch.softmax(ZERO_SHOT_SCALE * claim_vectors @ vectors.T, dim=-1).numpy()
            for task, vectors in self.label_vectors.items()
        }

    def decide(self, task: str, probabilities: np.ndarray) -> np.ndarray:
        return decide_labels(probabilities)

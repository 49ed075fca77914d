"""The specialist: one shared encoder, structured fields beside it, and one head per triage task."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from claims.model.encoder import mean_pool

STRUCTURED_WIDTH = 64


def decide_labels(probabilities: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """The chosen label per row: the most probable, after any tuned per-label offsets."""
    if offsets is None:
        return probabilities.argmax(axis=1)
    return (np.log(np.clip(probabilities, 1e-12, None)) + offsets).argmax(axis=1)


HEAD_WIDTH = 256


class SpecialistModel(nn.Module):
    def __init__(
        self,
        encoder: PreTrainedModel | nn.Module,
        hidden_size: int,
        structured_dim: int,
        label_counts: dict[str, int],
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.structured = (
            nn.Sequential(nn.Linear(structured_dim, STRUCTURED_WIDTH), nn.GELU())
            if structured_dim
            else None
        )
        width = hidden_size + (STRUCTURED_WIDTH if structured_dim else 0)
        self.heads = nn.ModuleDict(
            {
                task: nn.Sequential(
                    nn.Dropout(dropout),
                    nn.Linear(width, HEAD_WIDTH),
                    nn.GELU(),
                    nn.Dropout(dropout),
                    nn.Linear(HEAD_WIDTH, count),
                )
                for task, count in label_counts.items()
            }
        )

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, structured: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return self.classify(self.embed(input_ids, attention_mask), structured)

    def classify(
        self, embeddings: torch.Tensor, structured: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Each task's logits, from the claims' embeddings, however the encoder's pass ran."""
        features = embeddings
        if self.structured is not None:
            features = torch.cat([features, self.structured(structured.to(features.dtype))], -1)
        return {task: head(features).float() for task, head in self.heads.items()}

    def head_state(self) -> dict[str, torch.Tensor]:
        """Everything that is not the encoder: saved beside the adapter or the tuned layers."""
        return {
            name: tensor.detach().contiguous()
            for name, tensor in self.state_dict().items()
            if not name.startswith("encoder.")
        }


class Calibration(nn.Module):
    """Per task: undo the class weighting, then temperature-scale, so probabilities mean what
    they say (a weighted loss shifts each logit by log of its class weight)."""

    def __init__(self, class_weights: dict[str, list[float]]) -> None:
        super().__init__()
        self.offsets = {
            task: -torch.log(torch.tensor(weights)) for task, weights in class_weights.items()
        }
        self.temperatures = {task: 1.0 for task in class_weights}
        self.decision_offsets = {task: np.zeros(len(w)) for task, w in class_weights.items()}

    def probabilities(self, task: str, logits: torch.Tensor) -> torch.Tensor:
        adjusted = (logits + self.offsets[task]) / self.temperatures[task]
        return torch.softmax(adjusted, dim=-1)

    def fit_temperature(self, task: str, logits: torch.Tensor, targets: torch.Tensor) -> float:
        """The temperature that minimises negative log-likelihood on held-out rows."""
        adjusted = logits + self.offsets[task]
        log_temperature = torch.zeros(1, requires_grad=True)
        optimiser = torch.optim.LBFGS([log_temperature], lr=0.1, max_iter=100)

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(adjusted / log_temperature.exp(), targets)
            loss.backward()
            return loss

        optimiser.step(closure)
        self.temperatures[task] = float(log_temperature.detach().exp().clamp(0.05, 20.0))
        return self.temperatures[task]

    def decide(self, task: str, probabilities: np.ndarray) -> np.ndarray:
        return decide_labels(probabilities, self.decision_offsets[task])

    def to_json(self) -> dict[str, dict[str, object]]:
        return {
            task: {
                "temperature": self.temperatures[task],
                "offsets": offsets.tolist(),
                "decision_offsets": self.decision_offsets[task].tolist(),
            }
            for task, offsets in self.offsets.items()
        }

    @classmethod
    def from_json(cls, data: dict[str, dict[str, Any]]) -> Calibration:
        calibration = cls({task: [1.0] for task in data})
        for task, values in data.items():
            calibration.offsets[task] = torch.tensor(values["offsets"], dtype=torch.float32)
            calibration.temperatures[task] = float(values["temperature"])
            calibration.decision_offsets[task] = np.asarray(values["decision_offsets"])
        return calibration

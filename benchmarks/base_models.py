"""What a base model costs on this machine: seconds per fine-tuning step and claims a second
served, for several base models side by side on the same claims.

    python -m benchmarks.base_models                      # every installed catalogue model
    python -m benchmarks.base_models --models default all-mpnet-base-v2 --rounds 7

Each model goes through the product's own code: `prepare_data` (its tokenizer, the recipe's
`max_length`), `build_model` (the recipe's strategy), `batch_loss` and AdamW for a training step
in the precision fine-tuning runs, and a `TunedPredictor` with packed attention in the precision
serving runs. The rounds visit the models in turn, so that what else runs on the machine
weighs on each alike; the medians and the ratios to the default come from one run. The heads
are untrained: the cost of a pass does not depend on what the weights have learned. Quality is
measured by `benchmarks/accuracy.py`, with `base_model` set in the config.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.benchmark_docs import keep
from benchmarks.common import machine, provenance
from claims.data.dataset import LabelledClaims, frame_to_claims, load_claims
from claims.data.synthetic import generate_claims
from claims.domain.config import load_config
from claims.model.base_models import CATALOGUE, PackagedFolder, status
from claims.model.encoder import (
    DEFAULT_BASE_MODEL,
    load_encoder,
    load_tokenizer,
    resolve_base_model,
)
from claims.model.network import SpecialistModel
from claims.model.predictor import TunedPredictor
from schemas.config import SpecialistConfig
from training.calibration import candidate_predictor
from training.data import TrainingData, prepare_data
from training.fine_tuning import batch_loss, build_model, runs_bf16
from training.labels import IGNORE


@dataclass
class Contender:
    """One base model, ready to train a step and to serve a batch."""

    name: str
    data: TrainingData
    model: SpecialistModel
    optimiser: torch.optim.Optimizer
    losses: dict[str, nn.CrossEntropyLoss]
    bf16: bool
    predictor: TunedPredictor

    @classmethod
    def build(cls, name: str, config: SpecialistConfig, claims: LabelledClaims) -> Contender:
        config = config.model_copy(update={"base_model": name})
        path = resolve_base_model(name)
        data = prepare_data(config, claims, load_tokenizer(path), "benchmark")
        settings, cpu = config.training, torch.device("cpu")

        def fresh() -> SpecialistModel:
            features, counts = data.features.dimension, data.label_counts
            return build_model(load_encoder(path), settings, features, counts, cpu)

        model = fresh()
        trainable = [p for p in model.parameters() if p.requires_grad]
        predictor = candidate_predictor(fresh(), data)
        predictor = TunedPredictor(
            predictor.model,
            data.tokenizer,
            data.features,
            predictor.calibration,
            data.labels,
            data.max_length,
            name,
        )
        predictor.use_precision("auto")
        return cls(
            name,
            data,
            model,
            torch.optim.AdamW(trainable, lr=settings.encoder_learning_rate),
            {task: nn.CrossEntropyLoss(ignore_index=IGNORE) for task in data.label_counts},
            runs_bf16(settings, cpu),
            predictor,
        )

    def train_step(self, rows: np.ndarray) -> float:
        """Seconds of one step of fine-tuning on `rows` of the training split."""
        started = time.perf_counter()
        self.model.train()
        loss = batch_loss(
            self.model, self.data.train.batch(rows, torch.device("cpu")), self.losses, self.bf16
        )
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimiser.step()
        self.optimiser.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    def serve(self, claims: list) -> float:
        """Seconds to answer `claims` as the service's predictor does (tokenising included)."""
        started = time.perf_counter()
        self.predictor.predict_proba(claims)
        return time.perf_counter() - started


def installed_models() -> list[str]:
    """The default, then every catalogue model installed in the data directory but the ones
    whose weights ship inside a package (the default's own entry)."""
    return [DEFAULT_BASE_MODEL] + [
        entry.name
        for entry in CATALOGUE
        if status(entry) == "installed" and not isinstance(entry.source, PackagedFolder)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="base models (default: every installed one)")
    parser.add_argument("--data", type=Path, help="labelled claims (default: synthetic)")
    parser.add_argument("--config", type=Path, help="the TOML config mapping --data")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, help="training batch (default: the recipe's)")
    parser.add_argument("--serve-claims", type=int, default=256)
    parser.add_argument("--note", default="", help="a sentence for the docs about this run")
    arguments = parser.parse_args()
    config = load_config(arguments.config) if arguments.config else load_config()
    if arguments.data:
        claims = load_claims(arguments.data, config)
    else:
        claims = frame_to_claims(generate_claims(2000, seed=3), config, source="synthetic")
    models = arguments.models or installed_models()
    contenders = [Contender.build(name, config, claims) for name in models]
    batch = arguments.batch_size or config.training.batch_size
    rng = np.random.default_rng(0)
    served = list(claims.split()[1].claims[: arguments.serve_claims])
    steps: dict[str, list[float]] = {c.name: [] for c in contenders}
    serving: dict[str, list[float]] = {c.name: [] for c in contenders}
    for contender in contenders:  # a first pass of each warms its allocator and kernels
        contender.train_step(np.arange(batch))
        contender.serve(served[:16])
    for round_ in range(arguments.rounds):
        for contender in contenders:
            rows = rng.choice(len(contender.data.train.tokens), batch, replace=False)
            steps[contender.name].append(contender.train_step(rows))
            serving[contender.name].append(contender.serve(served))
        print(f"round {round_ + 1} of {arguments.rounds}", flush=True)
    base = contenders[0].name
    results: dict[str, dict[str, Any]] = {}
    for contender in contenders:
        name, model = contender.name, contender.model
        step = statistics.median(steps[name])
        seconds = statistics.median(serving[name])
        results[name] = {
            "parameters": sum(p.numel() for p in model.encoder.parameters()),
            "hidden_size": model.encoder.config.hidden_size,
            "layers": model.encoder.config.num_hidden_layers,
            "mean_tokens": float(np.mean(contender.data.train.tokens.lengths)),
            "train_step_s": round(step, 3),
            "train_step_s_all": [round(s, 3) for s in steps[name]],
            "trained_claims_per_s": round(batch / step, 1),
            "served_claims_per_s": round(len(served) / seconds, 1),
            "training_precision": "bf16" if contender.bf16 else "fp32",
            "serving_precision": contender.predictor.running_precision,
        }
    for figures in results.values():
        figures["train_cost_vs_first"] = round(
            figures["train_step_s"] / results[base]["train_step_s"], 2
        )
        figures["serve_cost_vs_first"] = round(
            results[base]["served_claims_per_s"] / figures["served_claims_per_s"], 2
        )
    result = {
        **provenance(),
        "note": arguments.note,
        "data": str(arguments.data or "synthetic (2,000 claims, seed 3)"),
        "batch_size": batch,
        "max_length": config.training.max_length,
        "served_claims": len(served),
        "rounds": arguments.rounds,
        "torch_threads": torch.get_num_threads(),
        "models": results,
    }
    path = keep("base-models", machine()[1], result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""The search that sets the training defaults: each candidate trained and scored on validation.

    python -m benchmarks.search --data data/claims.csv
    python -m benchmarks.search --data ../shared/datasets/workers_comp/claims.csv.gz \
        --config benchmarks/configs/workers_comp.toml --name workers_comp --budget 6

Candidates change one setting at a time from the config's own training section (a coordinate
search: affordable on two cores, and each row says what one change did). Scores are the mean
validation primary metric over tasks of the tuned model alone, never the test split: the boosted
partner and the decision offsets, chosen on the validation split itself, would mute and flatter
what a setting changes. Each candidate's lead over the config's own settings gets a 95% interval
per task, paired on bootstrap resamples of the same validation claims. With a dozen candidates
and a few tasks, about one interval in twenty misses zero by chance alone: a change earns the
defaults by leading beyond sampling error on more than one task, or again on another file.
Results go to benchmarks/results/search-<name>.json, best first, and to a table in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.benchmark_docs import keep
from benchmarks.common import provenance
from claims.data.dataset import LabelledClaims, load_claims
from claims.domain.config import load_config
from claims.model.checkpoint import load_checkpoint
from training.data import split_validation
from training.evaluate import ScoredSystem, paired_uncertainty
from training.metrics import primary_metric
from training.model_card import TUNED_ALONE
from training.trainer import SpecialistTrainer

ROOT = Path(__file__).resolve().parents[1]

DEFAULTS = "config defaults"

CANDIDATES: list[dict[str, object]] = [
    {},
    {"learning_rate": 2e-4},
    {"learning_rate": 1e-3},
    {"epochs": 2},
    {"epochs": 4},
    {"lora_rank": 8},
    {"lora_rank": 32, "lora_alpha": 64},
    {"lora_targets": ["query", "value"]},
    {"max_length": 64},
    {"strategy": "last-layers", "last_layers": 2, "learning_rate": 1e-4},
    {"strategy": "full", "learning_rate": 5e-5},
    {"head_learning_rate": 1e-3},
]


def tuned_alone(
    folder: Path, validation: LabelledClaims
) -> tuple[ScoredSystem, dict[str, list[str]]]:
    """A candidate's validation answers as its search score counts them: the tuned model
    alone, labels by the most probable; and its labels per task."""
    predictor = load_checkpoint(folder).predictor
    predictor.preparer.partner = None
    probabilities = predictor.predict_proba(validation.claims)
    return ScoredSystem("the tuned model alone", probabilities), predictor.labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--name", default="synthetic")
    parser.add_argument("--budget", type=int, default=len(CANDIDATES), help="candidates to try")
    arguments = parser.parse_args()
    base = load_config(arguments.config)
    development, _ = load_claims(arguments.data, base).split()
    _, validation = split_validation(development, base.training.validation_fraction)
    rows, answers = [], {}
    for change in CANDIDATES[: arguments.budget]:
        name = json.dumps(change) if change else DEFAULTS
        config = base.model_copy(deep=True)
        config.training = config.training.model_validate({**config.training.model_dump(), **change})
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            manifest = (
                SpecialistTrainer(config, show_progress=False).fit(arguments.data).save(folder)
            )
            seconds = time.perf_counter() - started
            answers[name], labels = tuned_alone(Path(folder), validation)
        scores = manifest.metrics[TUNED_ALONE]
        score = sum(scores[task.name][primary_metric(task.kind)] for task in config.tasks) / len(
            config.tasks
        )
        lead = {}
        if name != DEFAULTS:
            _, leads = paired_uncertainty(
                base,
                {name: answers[name], DEFAULTS: answers[DEFAULTS]},
                name,
                validation,
                labels,
                base.training.seed,
            )
            lead = {task: interval.model_dump() for task, interval in leads[DEFAULTS].items()}
        rows.append(
            {
                "change": change or DEFAULTS,
                "validation_score": round(score, 4),
                "validation": scores,
                "lead_over_defaults": lead,
                "seconds": round(seconds, 1),
            }
        )
        print(f"{name}: {score:.4f} in {seconds:.0f} s", flush=True)
    rows.sort(key=lambda row: -row["validation_score"])
    result = {
        **provenance(),
        "data": arguments.data.name,
        "training": base.training.model_dump(mode="json"),
        "validation_rows": len(validation),
        "rows": rows,
    }
    print(f"wrote {keep('search', arguments.name, result)}")


if __name__ == "__main__":
    main()

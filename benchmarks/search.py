"""The search that sets the training defaults: each candidate trained and scored on validation.

    python benchmarks/search.py --data data/claims.csv
    python benchmarks/search.py --data ../shared/datasets/workers_comp/claims.csv.gz \
        --config benchmarks/configs/workers_comp.toml --name workers_comp --budget 6

Candidates change one setting at a time from the config's own training section (a coordinate
search: affordable on two cores, and each row says what one change did). Scores are the mean
validation primary metric over tasks of the tuned model alone, never the test split: the boosted
partner and the decision offsets, chosen on the validation split itself, would mute and flatter
what a setting changes. Results go to benchmarks/results/search-<name>.json, best first, and to
a table in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not this folder: benchmarks/serving.py would shadow `serving`
sys.path.append(str(ROOT / "benchmarks"))

from benchmark_docs import keep  # noqa: E402
from common import provenance  # noqa: E402

from claims.config import load_config  # noqa: E402
from training.metrics import primary_metric  # noqa: E402
from training.model_card import TUNED_ALONE  # noqa: E402
from training.trainer import SpecialistTrainer  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--name", default="synthetic")
    parser.add_argument("--budget", type=int, default=len(CANDIDATES), help="candidates to try")
    arguments = parser.parse_args()
    base = load_config(arguments.config)
    rows = []
    validation_rows = 0
    for change in CANDIDATES[: arguments.budget]:
        config = base.model_copy(deep=True)
        config.training = config.training.model_validate({**config.training.model_dump(), **change})
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            outcome = SpecialistTrainer(config, show_progress=False).fit(arguments.data, folder)
        validation = outcome.manifest.metrics[TUNED_ALONE]
        validation_rows = outcome.manifest.training_data.validation_rows
        score = sum(
            validation[task.name][primary_metric(task.kind)] for task in config.tasks
        ) / len(config.tasks)
        rows.append(
            {
                "change": change or "config defaults",
                "validation_score": round(score, 4),
                "validation": validation,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(
            f"{json.dumps(change) or '{}'}: {score:.4f} in {rows[-1]['seconds']:.0f} s", flush=True
        )
    rows.sort(key=lambda row: -row["validation_score"])
    result = {
        **provenance(),
        "data": arguments.data.name,
        "training": base.training.model_dump(mode="json"),
        "validation_rows": validation_rows,
        "rows": rows,
    }
    print(f"wrote {keep('search', arguments.name, result)}")


if __name__ == "__main__":
    main()

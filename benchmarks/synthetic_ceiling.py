"""The ceiling of a synthetic benchmark: how well the generator's own hidden story scores the
held-out labels, with the same 95% bootstrap interval as `claims evaluate`. For a yes/no task the
story's own probability ranks the claims as well as anything can (AUC); for a multiclass task its
true label (the claim type; the severity band the hidden score falls in) is a reference no model
should pass by more than noise. A goal above the ceiling, or a gap between two systems far inside
its interval, cannot be settled on these claims.

    python -m claims generate --language pt --n 4000 --seed 7 --out runs/pt/claims_pt.csv
    python -m benchmarks.synthetic_ceiling --data runs/pt/claims_pt.csv --n 4000 --seed 7 \
        --language pt --config claims/defaults/synthetic_pt.toml --name synthetic_pt

The file must be exactly what `claims generate` writes with those settings (checked by sha256).
Writes benchmarks/results/ceiling-<name>.json and redraws docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.benchmark_docs import keep
from benchmarks.common import provenance
from claims.data.dataset import LabelledClaims, load_claims
from claims.data.synthetic import generate_claims_with_truth
from claims.data.tables import write_table
from claims.domain.config import load_config
from claims.model.encoder import file_sha256
from schemas.config import SpecialistConfig, TaskKind
from training.labels import resolve_labels
from training.metrics import labelled_rows, paired_bootstrap, primary_metric, task_metrics

CEILING = "hidden_story"


def regenerated_truth(data: Path, n: int, seed: int, language: str) -> pd.DataFrame:
    """The hidden story of `data`, after checking that `data` is exactly that generation."""
    claims, truth = generate_claims_with_truth(n, seed, language)
    with tempfile.TemporaryDirectory() as folder:
        again = write_table(claims, Path(folder) / f"claims{data.suffix}")
        if file_sha256(again) != file_sha256(data):
            raise SystemExit(
                f"{data} is not what `claims generate --n {n} --seed {seed} --language "
                f"{language}` writes: give the settings it was generated with"
            )
    return truth.set_index("claim_id")


def ceiling(
    config: SpecialistConfig, development: LabelledClaims, test: LabelledClaims, truth: pd.DataFrame
) -> dict[str, dict]:
    """Per task: the story's primary metric on the held-out claims, its interval and rows."""
    labels = {t.name: resolve_labels(t, development.labels[t.name]) for t in config.tasks}
    story = truth.loc[[claim.claim_id for claim in test.claims]]
    figures = {}
    for task, rows in labelled_rows(config, test, labels).items():
        kind = config.task(task).kind
        told = story[config.task(task).column].to_numpy()[rows.known]
        probabilities = np.zeros((len(told), len(labels[task])))
        if kind is TaskKind.binary:  # the story's probability of the positive label
            probabilities[:, rows.positive] = told.astype(float)
            probabilities[:, 1 - rows.positive] = 1.0 - told.astype(float)
            output = probabilities[:, rows.positive]
        else:  # the story's own label
            output = np.array([labels[task].index(label) for label in told])
            probabilities[np.arange(len(told)), output] = 1.0
        metric = primary_metric(kind)
        intervals, _ = paired_bootstrap(
            kind, rows.targets, {CEILING: output}, CEILING, rows.positive
        )
        figures[task] = {
            "metric": metric,
            "value": task_metrics(kind, rows.targets, probabilities, rows.positive)[metric],
            "interval": intervals[CEILING].model_dump(),
            "rows": len(rows.targets),
            "positives": int((rows.targets == rows.positive).sum())
            if kind is TaskKind.binary
            else None,
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--n", required=True, type=int)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--language", default="en")
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--name", required=True)
    arguments = parser.parse_args()

    truth = regenerated_truth(arguments.data, arguments.n, arguments.seed, arguments.language)
    config = load_config(arguments.config)
    development, test = load_claims(arguments.data, config).split()
    tasks = ceiling(config, development, test, truth)
    result = {
        **provenance(),
        "dataset": arguments.data.name,
        "data_sha256": file_sha256(arguments.data),
        "test_rows": len(test),
        "tasks": tasks,
    }
    print(keep("ceiling", arguments.name, result))  # and redraws docs/benchmarks.md
    print(json.dumps(tasks, indent=2))


if __name__ == "__main__":
    main()

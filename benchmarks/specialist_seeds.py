"""How much the specialist moves with nothing but its seed, for one or more base models: each
fitted with `training.seed` = each seed given (the seed drives the encoder's head, dropout and
batch order, and the stack's other members), all scored on the same held-out claims in one
evaluation beside the baselines. A single run's gap between two base models, or between the
specialist and a baseline, means little where it is smaller than this spread.

    python -m claims generate --language pt --n 4000 --seed 7 --out runs/pt/claims_pt.csv
    python -m benchmarks.specialist_seeds --data runs/pt/claims_pt.csv \
        --config claims/defaults/synthetic_pt.toml --name synthetic_pt \
        --base-model multilingual-e5-small --base-model default --seeds 0 1 2

A checkpoint already in `--work` is scored again, not refitted, so a run cut short goes on
where it stopped. Writes benchmarks/results/specialist-seeds-<name>.json and redraws
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.benchmark_docs import keep
from benchmarks.common import provenance, seed_spread
from claims.domain.config import load_config
from claims.model.checkpoint import MANIFEST
from schemas.config import SpecialistConfig
from training.evaluate import MEMBER_PREFIX, evaluate
from training.trainer import SpecialistTrainer

ROOT = Path(__file__).resolve().parents[1]


def seeded(config: SpecialistConfig, base_model: str, seed: int) -> SpecialistConfig:
    """The config with only its base model and its training seed changed."""
    changed = config.model_copy(update={"base_model": base_model})
    changed.training = config.training.model_copy(update={"seed": seed})
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--base-model", action="append", required=True, dest="base_models")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "specialist-seeds")
    arguments = parser.parse_args()

    config = load_config(arguments.config)
    runs = [(base, seed) for seed in arguments.seeds for base in arguments.base_models]
    folders = {}
    for base, seed in runs:
        folder = arguments.work / arguments.name / f"{base}-seed{seed}"
        if not (folder / MANIFEST).exists():
            print(f"fitting {base}, seed {seed}", flush=True)
            trainer = SpecialistTrainer(seeded(config, base, seed), show_progress=False)
            trainer.fit(arguments.data).save(folder)
        folders[base, seed] = folder

    first, *others = folders.values()
    report = evaluate(first, arguments.data, others)
    versions = {
        json.loads((folder / MANIFEST).read_text())["model_version"]: run
        for run, folder in folders.items()
    }
    primary = report.primary_metrics
    specialists: dict[str, dict[int, dict[str, float]]] = {
        base: {} for base in arguments.base_models
    }
    baselines = {}
    for name, system in report.systems.items():
        scores = {task: system.metrics[task][metric] for task, metric in primary.items()}
        if name == "specialist":
            name = report.model_version
        if name in versions:
            base, seed = versions[name]
            specialists[base][seed] = scores
        elif not name.startswith(MEMBER_PREFIX):  # the first fit's members alone: not a baseline
            baselines[name] = scores
    summary = {base: seed_spread(by_seed.values()) for base, by_seed in specialists.items()}
    result = {
        **provenance(),
        "dataset": report.data_file,
        "data_sha256": report.data_sha256,
        "test_rows": report.test_rows,
        "primary_metrics": primary,
        "seeds": arguments.seeds,
        "specialists": specialists,
        "baselines": baselines,
        "summary": summary,
    }
    print(keep("specialist-seeds", arguments.name, result))  # and redraws docs/benchmarks.md
    print(json.dumps({"summary": summary, "baselines": baselines}, indent=2))


if __name__ == "__main__":
    main()

"""Accuracy benchmark: the specialist against every baseline, through the product's own CLI.

    python -m benchmarks.accuracy --data synthetic
    python -m benchmarks.accuracy --data ../shared/datasets/workers_comp/claims.csv.gz \
        --config benchmarks/configs/workers_comp.toml --name workers_comp

Writes benchmarks/results/accuracy-<name>.json and regenerates docs/benchmarks.md (tables and
plots for every accuracy result kept). The ablation is the same recipe with the encoder frozen
(`--strategy head`): what the specialist would score without fine-tuning. Every figure has a 95%
bootstrap interval, and the specialist's lead over each system one paired on the same resamples.
`--rescore` scores the models a previous run left in `--work` again, without training.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.benchmark_docs import ABLATION, DOCS, keep, render

ROOT = Path(__file__).resolve().parents[1]

CLAIMS = [sys.executable, "-m", "claims"]


def run(*arguments: str) -> None:
    print("$ claims", " ".join(arguments), flush=True)
    subprocess.run([*CLAIMS, *arguments], check=True)


def train(data: Path, config: Path | None, model: Path, strategy: str | None) -> None:
    options = ["--config", str(config)] if config else []
    options += ["--strategy", strategy] if strategy else []
    run("train", "--data", str(data), "--out", str(model), *options)


def evaluate(data: Path, specialist: Path, ablation: Path, reports: Path) -> dict:
    """Both models scored in one evaluation, so the ablation's gap is paired like a baseline's."""
    run(
        "evaluate", "--model", str(specialist), "--data", str(data),
        "--out", str(reports), "--against", str(ablation),
    )  # fmt: skip
    version = _manifest(specialist)["model_version"]
    return json.loads((reports / f"evaluation-{version}.json").read_text())


def _manifest(model: Path) -> dict:
    return json.loads((model / "manifest.json").read_text())


def collect(report: dict, specialist: Path, ablation: Path) -> dict:
    ablation_manifest = _manifest(ablation)
    systems = {
        ABLATION if name == ablation_manifest["model_version"] else name: system
        for name, system in report["systems"].items()
    }
    systems[ABLATION]["description"] = "the same recipe with the encoder frozen: no fine-tuning"
    for name, manifest in (("specialist", _manifest(specialist)), (ABLATION, ablation_manifest)):
        systems[name]["trainable_parameters"] = manifest["trainable_parameters"]
        systems[name]["strategy"] = manifest["strategy"]
    return {
        "dataset": report["data_file"],
        "data_sha256": report["data_sha256"],
        "test_rows": report["test_rows"],
        "primary_metrics": report["primary_metrics"],
        "bootstrap_resamples": report["bootstrap_resamples"],
        "model_version": report["model_version"],
        "machine": (
            f"{platform.machine()}, {_cpu_count()} CPU cores, Python {platform.python_version()}"
        ),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "systems": systems,
    }


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a labelled claims file, or 'synthetic'")
    parser.add_argument("--config", type=Path, help="the TOML config mapping the file")
    parser.add_argument("--name", help="the dataset's name in results (default: file stem)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "benchmark")
    parser.add_argument(
        "--render-only", action="store_true", help="redraw docs from the kept results"
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score the models a previous run left in --work again, without training",
    )
    arguments = parser.parse_args()
    if arguments.render_only:
        render()
        return
    if not arguments.data:
        parser.error("--data is required")
    name = arguments.name or Path(arguments.data).name.split(".")[0]
    work = arguments.work / name
    if arguments.data == "synthetic":
        data = work / "claims.csv"
        run("generate", "--n", "4000", "--seed", "7", "--out", str(data))
    else:
        data = Path(arguments.data).resolve()
    specialist, ablation = work / "model-default", work / "model-head"
    if not arguments.rescore:
        train(data, arguments.config, specialist, None)
        train(data, arguments.config, ablation, "head")
    report = evaluate(data, specialist, ablation, work / "reports")
    path = keep("accuracy", name, collect(report, specialist, ablation))
    print(f"wrote {path} and {DOCS / 'benchmarks.md'}")


if __name__ == "__main__":
    main()

"""Accuracy benchmark: the specialist against every baseline, through the product's own CLI.

    python benchmarks/accuracy.py --data synthetic
    python benchmarks/accuracy.py --data ../shared/datasets/workers_comp/claims.csv.gz \
        --config benchmarks/configs/workers_comp.toml --name workers_comp

Writes benchmarks/results/accuracy-<name>.json and regenerates docs/benchmarks.md (tables and
plots for every accuracy result kept). The ablation is the same recipe with the encoder frozen
(`--strategy head`): what the specialist would score without fine-tuning.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not this folder: benchmarks/serving.py would shadow `serving`
sys.path.append(str(ROOT / "benchmarks"))

from benchmark_docs import ABLATION, DOCS, keep, render  # noqa: E402

CLAIMS = [sys.executable, "-m", "claims"]


def run(*arguments: str) -> None:
    print("$ claims", " ".join(arguments), flush=True)
    subprocess.run([*CLAIMS, *arguments], check=True)


def train_and_evaluate(data: Path, config: Path | None, work: Path, strategy: str | None) -> dict:
    name = strategy or "default"
    model, reports = work / f"model-{name}", work / f"reports-{name}"
    options = ["--config", str(config)] if config else []
    options += ["--strategy", strategy] if strategy else []
    run("train", "--data", str(data), "--out", str(model), *options)
    run("evaluate", "--model", str(model), "--data", str(data), "--out", str(reports))
    return collected_run(model, reports)


def collected_run(model: Path, reports: Path) -> dict:
    """The model's manifest and its own evaluation (the folder may hold earlier runs' too)."""
    manifest = json.loads((model / "manifest.json").read_text())
    report_path = reports / f"evaluation-{manifest['model_version']}.json"
    return {"report": json.loads(report_path.read_text()), "manifest": manifest}


def collect(specialist: dict, ablation: dict) -> dict:
    report = specialist["report"]
    systems = dict(report["systems"])
    systems[ABLATION] = {
        **ablation["report"]["systems"]["specialist"],
        "description": "the same recipe with the encoder frozen: no fine-tuning",
    }
    for name, run_result in (("specialist", specialist), (ABLATION, ablation)):
        systems[name]["trainable_parameters"] = run_result["manifest"]["trainable_parameters"]
        systems[name]["strategy"] = run_result["manifest"]["strategy"]
    return {
        "dataset": report["data_file"],
        "data_sha256": report["data_sha256"],
        "test_rows": report["test_rows"],
        "primary_metrics": report["primary_metrics"],
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
    specialist = train_and_evaluate(data, arguments.config, work, None)
    ablation = train_and_evaluate(data, arguments.config, work, "head")
    path = keep("accuracy", name, collect(specialist, ablation))
    print(f"wrote {path} and {DOCS / 'benchmarks.md'}")


if __name__ == "__main__":
    main()

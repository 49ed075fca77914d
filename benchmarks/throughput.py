"""Throughput benchmark: backlog scoring, file in to file out, beside a naive loop.

    python benchmarks/throughput.py                  # 5,000 synthetic claims, a quick model
    python benchmarks/throughput.py --model runs/specialist --rows 20000 --repeats 5

Both paths score the same claims with the same checkpoint in one run, alternating, and the
medians are compared. The naive loop reads the whole file, pads every batch of 64 to 128 tokens
in file order and runs fp32 with no overlap; the product's path is `claims score`'s
`BacklogScorer` (length buckets, dynamic padding, the next chunk tokenised while the model runs,
bf16 on a GPU or a CPU with native bf16). On the CPU it also measures fp32 and int8 dynamic
quantisation; a reduced precision is acceptable only if it moves no metric by more than half a
point on labelled claims, which the results record. Writes benchmarks/results/throughput-
<cpu|gpu name>.json and regenerates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not this folder: benchmarks/serving.py would shadow `serving`
sys.path.append(str(ROOT / "benchmarks"))

from benchmark_docs import keep, render  # noqa: E402
from common import CLAIMS, machine, provenance, quick_model  # noqa: E402
from torch import nn  # noqa: E402

from claims.checkpoint import LoadedCheckpoint, load_checkpoint  # noqa: E402
from claims.dataset import frame_to_claims, load_claims  # noqa: E402
from claims.decision import decide_all  # noqa: E402
from claims.streams import read_rows  # noqa: E402
from claims.tables import read_table  # noqa: E402
from claims.triage import chosen_labels  # noqa: E402
from serving.scoring import BacklogScorer, load_scoring_model  # noqa: E402
from training.trainer import score_predictions  # noqa: E402

NAIVE_BATCH, NAIVE_WIDTH = 64, 128
PRECISION_TOLERANCE = 0.005  # half a point of any metric


def naive_score(loaded: LoadedCheckpoint, source: Path, out: Path) -> int:
    """What a first script does: whole file in memory, fixed padding, file order, fp32."""
    predictor, config = loaded.predictor, loaded.config
    frame = read_table(source)
    claims = frame_to_claims(frame, config, source=source.name, require_labels=False).claims
    device = next(predictor.model.parameters()).device
    rows = []
    with torch.no_grad():
        for start in range(0, len(claims), NAIVE_BATCH):
            batch = claims[start : start + NAIVE_BATCH]
            encoded = predictor.tokenizer(
                [c.description for c in batch],
                padding="max_length",
                truncation=True,
                max_length=NAIVE_WIDTH,
                return_tensors="pt",
            )
            structured = torch.from_numpy(predictor.features.transform(batch))
            logits = predictor.model(
                encoded["input_ids"].to(device),
                encoded["attention_mask"].to(device),
                structured.to(device),
            )
            probabilities = {
                task: predictor.calibration.probabilities(task, values.float().cpu()).numpy()
                for task, values in logits.items()
            }
            if predictor.partner is not None:  # the same answers as the product: blended
                inputs = predictor.partner.inputs(
                    [c.description for c in batch], structured.numpy()
                )
                probabilities = predictor.partner.blend(probabilities, inputs)
            chosen = chosen_labels(predictor, probabilities)
            decisions = decide_all(batch, probabilities, chosen, predictor.labels, config.policy)
            for row, claim in enumerate(batch):
                labels = {task: predictor.labels[task][chosen[task][row]] for task in chosen}
                rows.append({"claim_id": claim.claim_id, "route": decisions.routes[row], **labels})
    pd.DataFrame(rows).to_csv(out, index=False)
    return len(rows)


def timed(function, *arguments) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    """(seconds, what the function returned)"""
    started = time.perf_counter()
    value = function(*arguments)
    return time.perf_counter() - started, value


def product_score(loaded: LoadedCheckpoint, source: Path, out: Path) -> int:
    scorer = BacklogScorer(loaded.predictor, loaded.config)
    return scorer.score(source, out, restart=True).scored


def stage_rates(loaded: LoadedCheckpoint, source: Path, repeats: int) -> dict[str, float]:
    """Claims per second of each step of `claims score` alone, the whole file as one chunk:
    what bounds the run once the model is fast (on a GPU)."""
    predictor = loaded.predictor
    scorer = BacklogScorer(predictor, loaded.config)
    rows = list(read_rows(source))
    numbers = list(range(1, len(rows) + 1))
    chunk = scorer.prepare(rows, numbers)
    probabilities = predictor.predict_proba(chunk.prepared)
    stages = {
        "validate, tokenise, features (reading thread)": (scorer.prepare, rows, numbers),
        "encoder": (predictor.logits, chunk.prepared),
        "decisions and output columns": (scorer.scored_table, chunk, probabilities),
    }
    if predictor.partner is not None:
        stages["boosted partner"] = (predictor.partner.predict_proba, chunk.prepared.partner_inputs)
    seconds: dict[str, list[float]] = {stage: [] for stage in stages}
    for _ in range(repeats):
        for stage, (function, *arguments) in stages.items():
            seconds[stage].append(timed(function, *arguments)[0])
    return {
        stage: round(len(rows) / statistics.median(values), 1) for stage, values in seconds.items()
    }


def metric_change(fp32: LoadedCheckpoint, reduced: LoadedCheckpoint, labelled: Path) -> dict:
    """Every metric of every task, in fp32 and in the reduced precision, on labelled claims."""
    claims = load_claims(labelled, fp32.config)
    scores = {}
    for name, loaded in (("fp32", fp32), ("reduced", reduced)):
        predictor = loaded.predictor
        scores[name] = score_predictions(
            loaded.config,
            predictor.predict_proba(claims.claims),
            claims,
            predictor.labels,
            predictor.decide,
        )
    changes = {
        f"{task}.{metric}": round(abs(scores["reduced"][task][metric] - value), 4)
        for task, metrics in scores["fp32"].items()
        for metric, value in metrics.items()
        if metric != "rows"
    }
    return {**scores, "absolute_change": changes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint; default: a quick one")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "throughput")
    parser.add_argument("--render-only", action="store_true")
    arguments = parser.parse_args()
    if arguments.render_only:
        render()
        return
    work = arguments.work
    work.mkdir(parents=True, exist_ok=True)
    model = arguments.model or quick_model(work)
    backlog, labelled = work / f"backlog-{arguments.rows}.csv", work / "labelled.csv"
    if not backlog.exists():
        subprocess.run(
            [
                *CLAIMS,
                "generate",
                "--n",
                str(arguments.rows),
                "--seed",
                "77",
                "--out",
                str(backlog),
            ],
            check=True,
        )
    if not labelled.exists():
        subprocess.run(
            [*CLAIMS, "generate", "--n", "2000", "--seed", "78", "--out", str(labelled)],
            check=True,
        )
    kind = machine()[1]
    paths = {"naive": (load_checkpoint(model), naive_score)}
    if kind != "cpu":
        paths["naive"][0].predictor.model.to("cuda")
    paths["product"] = (load_scoring_model(model), product_score)
    if kind == "cpu":
        paths["product_fp32"] = (load_scoring_model(model, precision="fp32"), product_score)
        int8 = load_scoring_model(model, precision="fp32")
        int8.predictor.model = torch.ao.quantization.quantize_dynamic(
            int8.predictor.model, {nn.Linear}, dtype=torch.qint8
        )
        paths["product_int8"] = (int8, product_score)

    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(arguments.repeats):
        for name, (loaded, function) in paths.items():
            elapsed, scored = timed(function, loaded, backlog, work / f"out-{name}.csv")
            assert scored == arguments.rows, (name, scored)
            seconds[name].append(elapsed)
            print(f"{name}: {scored / elapsed:,.0f} claims/s", flush=True)

    stages = stage_rates(paths["product"][0], backlog, arguments.repeats)
    tokens = (
        paths["product"][0]
        .predictor.prepare(
            frame_to_claims(
                read_table(backlog), paths["product"][0].config, source="b", require_labels=False
            ).claims
        )
        .token_ids
    )
    rates = {name: arguments.rows / statistics.median(values) for name, values in seconds.items()}
    result = {
        **provenance(),
        "rows": arguments.rows,
        "repeats": arguments.repeats,
        "mean_tokens": round(float(np.mean([len(ids) for ids in tokens])), 1),
        "model_version": paths["product"][0].manifest.model_version,
        "seconds": seconds,
        "claims_per_second": {name: round(rate, 1) for name, rate in rates.items()},
        "speedup_vs_naive": round(rates["product"] / rates["naive"], 2),
        "stages_claims_per_second": stages,
    }
    result["precision"] = "bf16" if paths["product"][0].predictor.bf16 or kind != "cpu" else "fp32"
    if kind == "cpu":  # reduced precisions against fp32, on labelled claims
        fp32 = paths["product_fp32"][0]
        result["precision_checks"] = {}
        for name in ("product", "product_int8"):
            loaded = paths[name][0]
            if name == "product" and not loaded.predictor.bf16:
                continue
            check = metric_change(fp32, loaded, labelled)
            largest = max(check["absolute_change"].values())
            result["precision_checks"][name] = {
                "speedup_vs_naive": round(rates[name] / rates["naive"], 2),
                "largest_metric_change": largest,
                "acceptable": largest <= PRECISION_TOLERANCE,
                **check,
            }
    path = keep("throughput", kind, result)
    print(f"wrote {path} and docs/benchmarks.md")


if __name__ == "__main__":
    main()

"""Explanation benchmark: are the phrases an explanation names the ones the answer rests on,
and what does explaining cost?

    python -m benchmarks.explanations --model runs/benchmark/specialist
    python -m benchmarks.explanations --claims 20 --timed 10   # a quick check of the script

Faithfulness: on held-out claims (synthetic, a seed no training used; or `--data`), each task's
top raising phrase is removed, and so is a random phrase of as many words elsewhere in the same
narrative; the chosen label's probability should fall clearly more without the top phrase. Both
mean falls are reported, with a 95% paired bootstrap interval of their difference. Cost: one
claim at a time, the median and p95 of triage with every answer explained, and as served (only
the answers that need review explained).
Writes benchmarks/results/explanations-<machine>.json and its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.benchmark_docs import keep
from benchmarks.common import claim_requests, machine, provenance, quick_model
from claims.data.tables import read_table
from claims.domain.triage import triage
from claims.model.checkpoint import load_checkpoint
from claims.model.explain import without
from claims.model.predictor import TunedPredictor
from schemas.claim import Claim
from schemas.policy import DecisionPolicy

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT_SEED = 2027  # quick_model trains on seed 5; the accuracy benchmark on its own split
RESAMPLES = 2000
BATCH = 32


def held_out(count: int, data: Path | None) -> list[Claim]:
    if data is None:
        return [Claim.model_validate(body) for body in claim_requests(count, HELD_OUT_SEED)]
    frame = read_table(data).head(count)
    fields = set(Claim.model_fields) - {"attributes"}
    claims = []
    for row in frame.to_dict(orient="records"):
        known = {k: v for k, v in row.items() if k in fields and v == v and v is not None}
        claims.append(Claim.model_validate(known))
    return claims


def random_window(
    text: str, words: int, avoid: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int] | None:
    """A random run of `words` words of `text` other than the span `avoid`, or None."""
    matches = list(re.finditer(r"\S+", text))
    starts, ends = [m.start() for m in matches], [m.end() for m in matches]
    windows = [
        (starts[i], ends[i + words - 1])
        for i in range(len(starts) - words + 1)
        if (starts[i], ends[i + words - 1]) != avoid
    ]
    return windows[rng.integers(len(windows))] if windows else None


def faithfulness(
    claims: list[Claim], predictor: TunedPredictor, policy: DecisionPolicy, seed: int
) -> dict:
    """Per task: the fall of the chosen label's probability without the top phrase, and
    without a random phrase of as many words."""
    rng = np.random.default_rng(seed)
    falls: dict[str, list[tuple[float, float]]] = {task: [] for task in predictor.labels}
    for first in range(0, len(claims), BATCH):
        chunk = claims[first : first + BATCH]
        results = triage(chunk, predictor, policy, explain=True)
        variants, keys = [], []
        for claim, result in zip(chunk, results, strict=True):
            assert result.explanation is not None
            for task, explained in result.explanation.tasks.items():
                top = next((f for f in explained.phrases if f.weight > 0), None)
                if top is None:
                    continue
                count = len(top.text.split())
                other = random_window(claim.description, count, (top.start, top.end), rng)
                if other is None:
                    continue
                label = predictor.labels[task].index(explained.label)
                for start, end in ((top.start, top.end), other):
                    shorter = without(claim.description, start, end)
                    variants.append(claim.model_copy(update={"description": shorter}))
                keys.append((task, label, explained.probability, len(variants) - 2))
        if not variants:
            continue
        probabilities = predictor.predict_proba(variants)
        for task, label, served, at in keys:
            values = probabilities[task][at : at + 2, label]
            falls[task].append((served - values[0], served - values[1]))
    return {task: summarise(pairs, seed) for task, pairs in falls.items() if pairs}


def summarise(pairs: list[tuple[float, float]], seed: int) -> dict:
    values = np.asarray(pairs)
    difference = values[:, 0] - values[:, 1]
    rng = np.random.default_rng(seed)
    resampled = rng.integers(len(values), size=(RESAMPLES, len(values)))
    means = difference[resampled].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "claims": len(values),
        "mean_fall_top_phrase": round(float(values[:, 0].mean()), 4),
        "mean_fall_random_phrase": round(float(values[:, 1].mean()), 4),
        "mean_difference": round(float(difference.mean()), 4),
        "difference_95_interval": [round(float(low), 4), round(float(high), 4)],
    }


def latencies(
    claims: list[Claim], predictor: TunedPredictor, policy: DecisionPolicy, explain: bool
) -> dict:
    triage(claims[:2], predictor, policy, explain=explain)  # warm
    seconds = []
    for claim in claims:
        started = time.perf_counter()
        triage([claim], predictor, policy, explain=explain)
        seconds.append(time.perf_counter() - started)
    quantiles = statistics.quantiles(seconds, n=20)
    return {
        "claims": len(seconds),
        "p50_ms": round(1000 * statistics.median(seconds), 1),
        "p95_ms": round(1000 * quantiles[18], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint; default: a quick one")
    parser.add_argument("--data", type=Path, help="held-out labelled claims; default: synthetic")
    parser.add_argument("--claims", type=int, default=500, help="held-out claims to explain")
    parser.add_argument("--timed", type=int, default=100, help="claims timed one at a time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "explanations")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/explanations-*.json")
    parser.add_argument("--note", help="what the reader should know of this run")
    args = parser.parse_args()

    model = args.model or quick_model(args.work)
    loaded = load_checkpoint(model)
    predictor, policy = loaded.predictor, loaded.config.policy
    claims = held_out(args.claims, args.data)
    timed = claims[: args.timed]
    result = {
        **provenance(),
        "model_version": loaded.manifest.model_version,
        "torch_threads": torch.get_num_threads(),
        "faithfulness": faithfulness(claims, predictor, policy, args.seed),
        "triage_explained": latencies(timed, predictor, policy, explain=True),
        # as served: only the answers that need review are explained
        "triage_as_served": latencies(timed, predictor, policy, explain=False),
    }
    if args.note:
        result["note"] = args.note
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    else:
        print(keep("explanations", machine()[1], result))  # and redraws docs/benchmarks.md


if __name__ == "__main__":
    main()

"""Throughput benchmark: backlog scoring, file in to file out, beside a naive loop.

    python -m benchmarks.throughput                  # 5,000 synthetic claims, a quick model
    python -m benchmarks.throughput --model runs/specialist --rows 20000 --repeats 5
    python -m benchmarks.throughput --model runs/specialist --rows 1000000 --naive-rows 100000 \
        --tokens 80                                  # on a GPU

Both paths score the same claims with the same checkpoint in one run, alternating, and the
medians are compared. The naive loop reads the whole file, pads every batch of 64 to 128 tokens
in file order and runs fp32 with no overlap; the product's path is `claims score`'s
`BacklogScorer` (length buckets, dynamic padding, the CPU work done while the model runs: by a
thread beside a CPU model, by a pool of processes beside a GPU; bf16 on a GPU or a CPU with
native bf16). At most 50,000 distinct claims are generated; a larger backlog repeats them under
new claim ids. `--tokens` continues each narrative with the next claims' to about that many
tokens. `--naive-rows` times the naive loop on the backlog's first rows only, where the whole
file would take it too long (its rate does not depend on the file's length). On the CPU it also
measures fp32 and int8 dynamic
quantisation; a reduced precision is acceptable only if it moves no metric by more than half a
point on labelled claims, which the results record. Writes benchmarks/results/throughput-
<cpu|gpu name>.json and regenerates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from benchmarks.benchmark_docs import keep, render
from benchmarks.common import CLAIMS, machine, provenance, quick_model
from claims.data.dataset import frame_to_claims, load_claims
from claims.data.streams import read_rows
from claims.data.tables import read_table
from claims.domain.decision import decide_all, policy_fields
from claims.domain.triage import chosen_labels
from claims.model.checkpoint import LoadedCheckpoint, load_checkpoint
from schemas.scoring import ScoreSummary
from serving.batch.scoring import BacklogScorer, default_workers, load_scoring_model
from training.metrics import score_predictions

ROOT = Path(__file__).resolve().parents[1]

NAIVE_BATCH, NAIVE_WIDTH = 64, 128
DISTINCT_CLAIMS = 50_000
STAGE_ROWS = 20_000
PRECISION_TOLERANCE = 0.005  # half a point of any metric


def naive_score(loaded: LoadedCheckpoint, source: Path, out: Path) -> int:
    """What a first script does: whole file in memory, fixed padding, file order, fp32."""
    predictor, config = loaded.predictor, loaded.config
    preparer = predictor.preparer
    frame = read_table(source)
    claims = frame_to_claims(frame, config, source=source.name, require_labels=False).claims
    device = next(predictor.model.parameters()).device
    rows = []
    with torch.no_grad():
        for start in range(0, len(claims), NAIVE_BATCH):
            batch = claims[start : start + NAIVE_BATCH]
            encoded = preparer.tokenizer(
                [c.description for c in batch],
                padding="max_length",
                truncation=True,
                max_length=NAIVE_WIDTH,
                return_tensors="pt",
            )
            structured = torch.from_numpy(preparer.features.transform(batch))
            logits = predictor.model(
                encoded["input_ids"].to(device),
                encoded["attention_mask"].to(device),
                structured.to(device),
            )
            probabilities = {
                task: predictor.calibration.probabilities(task, values.float().cpu()).numpy()
                for task, values in logits.items()
            }
            if preparer.partner is not None:  # the same answers as the product: blended
                inputs = preparer.partner.inputs([c.description for c in batch], structured.numpy())
                boosted = preparer.partner.predict_proba(inputs)
                probabilities = preparer.partner.blend(probabilities, boosted)
            chosen = chosen_labels(predictor, probabilities)
            fields = policy_fields(batch, config.policy)
            decisions = decide_all(fields, probabilities, chosen, predictor.labels, config.policy)
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


def device_of(loaded: LoadedCheckpoint) -> str:
    return next(loaded.predictor.model.parameters()).device.type


def product_score(loaded: LoadedCheckpoint, source: Path, out: Path) -> ScoreSummary:
    """`claims score`'s path, with the workers the command picks."""
    workers = default_workers(device_of(loaded))
    scorer = BacklogScorer(loaded.predictor, loaded.config, workers=workers)
    return scorer.score(source, out, restart=True)


def lengthened(texts: pd.Series, tokenizer, tokens: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Each narrative continued by the next claims' to about `tokens` tokens: the speed of
    longer narratives, whatever they say."""
    words = [text.split() for text in texts]
    sample = words[:2000]
    counted = sum(len(tokenizer(" ".join(w))["input_ids"]) - 2 for w in sample)
    wanted = max(1, round((tokens - 2) * sum(map(len, sample)) / counted))
    stream = [word for text in words for word in text]
    stream += stream[:wanted]  # the last claims continue with the first
    starts = np.cumsum([0] + [len(w) for w in words[:-1]])
    return [" ".join(stream[start : start + wanted]) for start in starts]


def backlog_files(
    work: Path, rows: int, naive_rows: int, tokens: int | None, tokenizer
) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """(the backlog, its first `naive_rows` rows) as CSV files, made once."""
    distinct = min(rows, DISTINCT_CLAIMS)
    generated = work / f"generated-{distinct}.csv"
    if not generated.exists():
        subprocess.run(
            [*CLAIMS, "generate", "--n", str(distinct), "--seed", "77", "--out", str(generated)],
            check=True,
        )
    name = f"backlog-{rows}" + (f"-{tokens}-tokens" if tokens else "")
    backlog, first = work / f"{name}.csv", work / f"{name}-first-{naive_rows}.csv"
    if not backlog.exists():
        frame = pd.read_csv(generated, dtype=str, keep_default_na=False)
        if tokens:
            frame["description"] = lengthened(frame["description"], tokenizer, tokens)
        copies = [
            frame.assign(claim_id=frame["claim_id"] + (f"-{copy}" if copy else ""))
            for copy in range(-(-rows // distinct))
        ]
        pd.concat(copies).head(rows).to_csv(backlog, index=False)
    if naive_rows < rows and not first.exists():
        pd.read_csv(backlog, dtype=str, keep_default_na=False, nrows=naive_rows).to_csv(
            first, index=False
        )
    return backlog, first if naive_rows < rows else backlog


def stage_rates(loaded: LoadedCheckpoint, source: Path, repeats: int) -> dict[str, float]:
    """Claims per second of each step of `claims score` alone, in one process, the file's first
    rows as one chunk: what bounds the run once the model is fast (on a GPU)."""
    predictor = loaded.predictor
    scorer = BacklogScorer(predictor, loaded.config)
    rows = [row for row, _ in zip(read_rows(source), range(STAGE_ROWS), strict=False)]
    numbers = list(range(1, len(rows) + 1))
    chunk = scorer.prepare(rows, numbers)
    answers = scorer.answer(chunk)
    stages = {
        "validate, tokenise, features, boosted partner (one process)": (
            scorer.prepare,
            rows,
            numbers,
        ),
        "encoder": (predictor.logits, chunk.prepared),
        "decisions and output columns": (scorer.work.scored_table, chunk, answers),
    }
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
    parser.add_argument("--naive-rows", type=int, help="time the naive loop on the first rows")
    parser.add_argument("--tokens", type=int, help="lengthen narratives to about this many")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "throughput")
    parser.add_argument("--render-only", action="store_true")
    arguments = parser.parse_args()
    if arguments.render_only:
        render()
        return
    work = arguments.work
    work.mkdir(parents=True, exist_ok=True)
    model = arguments.model or quick_model(work)
    labelled = work / "labelled.csv"
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
    rows, naive_rows = arguments.rows, min(arguments.naive_rows or arguments.rows, arguments.rows)
    tokenizer = paths["product"][0].predictor.preparer.tokenizer
    backlog, naive_backlog = backlog_files(work, rows, naive_rows, arguments.tokens, tokenizer)
    if kind == "cpu":
        paths["product_fp32"] = (load_scoring_model(model, precision="fp32"), product_score)
        int8 = load_scoring_model(model, precision="fp32")
        int8.predictor.model = torch.ao.quantization.quantize_dynamic(
            int8.predictor.model, {nn.Linear}, dtype=torch.qint8
        )
        paths["product_int8"] = (int8, product_score)

    product = paths["product"][0]
    sample = read_table(naive_backlog).head(STAGE_ROWS)
    claims = frame_to_claims(sample, product.config, source="b", require_labels=False).claims
    prepared = product.predictor.preparer.prepare(claims)
    result = {
        **provenance(),
        "rows": rows,
        "naive_rows": naive_rows,
        "distinct_claims": min(rows, DISTINCT_CLAIMS),
        "repeats": arguments.repeats,
        "complete": False,  # until every run is in: a run stopped early keeps what it measured
        "mean_tokens": round(float(np.mean(prepared.tokens.lengths)), 1),
        "workers": default_workers(device_of(product)),
        "model_version": product.manifest.model_version,
        "precision": product.predictor.running_precision,
        # first: quick, and what bounds the run once the model is fast
        "stages_claims_per_second": stage_rates(product, backlog, arguments.repeats),
        "seconds": {name: [] for name in paths},
        "model_and_waiting_seconds": [],  # the product's runs, as `claims score` reports them
    }
    counts = {name: naive_rows if name == "naive" else rows for name in paths}
    for _ in range(arguments.repeats):
        for name, (loaded, function) in paths.items():
            source = naive_backlog if name == "naive" else backlog
            elapsed, answer = timed(function, loaded, source, work / f"out-{name}.csv")
            scored = answer if isinstance(answer, int) else answer.scored
            assert scored == counts[name], (name, scored)
            result["seconds"][name].append(elapsed)
            if name == "product":
                result["model_and_waiting_seconds"].append(
                    [answer.model_seconds, answer.waiting_seconds]
                )
            print(f"{name}: {scored / elapsed:,.0f} claims/s", flush=True)
        rates = {
            name: counts[name] / statistics.median(values)
            for name, values in result["seconds"].items()
        }
        result["claims_per_second"] = {name: round(rate, 1) for name, rate in rates.items()}
        result["speedup_vs_naive"] = round(rates["product"] / rates["naive"], 2)
        keep("throughput", kind, result)
    result["complete"] = True
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

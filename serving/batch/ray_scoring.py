"""`claims score --engine ray`: the same scoring on Ray Data, for backlogs beyond one machine.

The file is read in parallel blocks, `map_batches` runs them through a pool of model actors
(one per GPU, else one per CPU slot), and the scored and rejected rows are written as Parquet.
Each actor scores exactly as the local engine does (`BacklogScorer.prepare` and `predict`), so
both engines give the same predictions. Connects to the cluster in RAY_ADDRESS, else starts
Ray on this machine. A malformed line stops the run here (the local engine rejects it instead):
a distributed reader cannot hand it back, and no row may be lost silently.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from claims.data.streams import csv_column_names
from claims.data.tables import table_format
from claims.domain.language import LanguageDetector
from claims.model.checkpoint import verify_checkpoint
from claims.model.predictor import cpu_has_bf16
from schemas.scoring import ScoreSummary
from serving.batch.scoring import BacklogScorer, load_scoring_model

REASON = "reject_reason"


class ScoringActor:
    """One model per actor, loaded once; Ray calls it with one batch of rows at a time."""

    def __init__(
        self, model_dir: str, explain: bool = False, languages: LanguageDetector | None = None
    ) -> None:
        loaded = load_scoring_model(Path(model_dir))
        self.scorer = BacklogScorer(
            loaded.predictor, loaded.config, explain=explain, languages=languages
        )

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = batch.to_dict(orient="records")
        chunk = self.scorer.prepare(rows, [None] * len(rows))
        scored, rejected = self.scorer.predict(chunk)
        scored = scored.append_column(REASON, pa.nulls(len(scored), pa.string()))
        rejected = rejected.rename_columns(["row", "claim_id", REASON])
        return pa.concat_tables([scored, rejected], promote_options="default").to_pandas()


def _read(source: Path):  # type: ignore[no-untyped-def]  # ray.data.Dataset
    import ray

    kind = table_format(source)
    if kind == "csv":
        # every cell as text, as the local engine reads it
        names = csv_column_names(source)
        return ray.data.read_csv(
            str(source),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in names}, strings_can_be_null=True
            ),
        )
    if kind == "jsonl":
        return ray.data.read_json(str(source), lines=True)
    return ray.data.read_parquet(str(source))


def _where(results, *, rejected: bool):  # type: ignore[no-untyped-def]  # ray.data.Dataset
    """The rejected rows, or the scored ones: filtered in Arrow a whole batch at a time, not
    one Python row at a time."""

    def keep(batch: pa.Table) -> pa.Table:
        reasons = batch[REASON]
        return batch.filter(pc.is_valid(reasons) if rejected else pc.is_null(reasons))

    return results.map_batches(keep, batch_format="pyarrow")


def score_with_ray(
    model_dir: Path,
    source: Path,
    out: Path,
    rejects: Path | None = None,
    *,
    actors: int | None = None,
    batch_rows: int = 4096,
    explain: bool = False,
    languages: LanguageDetector | None = None,
) -> ScoreSummary:
    """`out` and `rejects` are folders of Parquet files; `explain` adds the local engine's
    explanation columns. `languages` goes to every actor, wherever it runs: the settings of
    this process, not of the nodes'."""
    import ray

    started = time.perf_counter()
    rejects = rejects or out.with_name(f"{out.name}.rejects")
    ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, log_to_driver=False)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    pool = actors or gpus or max(1, int(resources.get("CPU", 1)) // 2)
    version = verify_checkpoint(model_dir).model_version
    dataset = _read(source)
    results = dataset.map_batches(
        ScoringActor,
        fn_constructor_kwargs={
            "model_dir": str(model_dir),
            "explain": explain,
            "languages": languages,
        },
        batch_size=batch_rows,
        batch_format="pandas",
        concurrency=pool,
        num_gpus=1 if gpus else 0,
    ).materialize()
    scored = _where(results, rejected=False).drop_columns([REASON])
    rejected = (
        _where(results, rejected=True)
        .select_columns(["row", "claim_id", REASON])
        .rename_columns({REASON: "reason"})
    )
    scored.write_parquet(str(out))
    rejected.write_parquet(str(rejects))
    counts = {"scored": scored.count(), "rejected": rejected.count()}
    seconds = time.perf_counter() - started
    return ScoreSummary(
        rows=results.count(),
        **counts,
        resumed_chunks=0,
        output=str(out),
        rejects=str(rejects),
        model_version=version,
        precision="bf16" if gpus or cpu_has_bf16() else "fp32",
        seconds=round(seconds, 3),
        claims_per_second=round(counts["scored"] / max(seconds, 1e-9), 1),
    )

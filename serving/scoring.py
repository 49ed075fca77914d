"""Scoring a backlog file: streamed in chunks, resumable, every row scored or rejected.

Each chunk is written to a part file and then marked done, so an interrupted run resumes at the
first chunk not marked and never scores one twice. The next chunk is read, validated and
tokenised in a second thread while the model runs on the current one. At the end the parts
are joined into the output and the rejects file, and the counts always add up.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from pydantic import ValidationError

from claims.checkpoint import LoadedCheckpoint, load_checkpoint
from claims.config import describe_validation_error
from claims.dataset import row_to_claim
from claims.decision import decide_all
from claims.features import FeatureError
from claims.predictor import PreparedClaims, TunedPredictor, cpu_has_bf16
from claims.registry import Registry
from claims.settings import DataSettings
from claims.streams import Row, TableWriter, Unreadable, batched, read_rows
from claims.tables import SUPPORTED_SUFFIXES, table_format
from claims.triage import chosen_labels
from schemas.claim import Claim
from schemas.config import SpecialistConfig
from schemas.scoring import ScoreSummary

REJECT_SCHEMA = pa.schema([("row", pa.int64()), ("claim_id", pa.string()), ("reason", pa.string())])
STATE_FILE = "state.json"


class ScoringError(RuntimeError):
    """A run that cannot start or resume; the message says what to do."""


def rejects_path(out: Path) -> Path:
    """`scores.csv` -> `scores.rejects.csv`, `scores.jsonl.gz` -> `scores.rejects.jsonl.gz`."""
    table_format(out)
    suffix = next(s for s in SUPPORTED_SUFFIXES[::-1] if out.name.lower().endswith(s))
    return out.with_name(out.name[: -len(suffix)] + ".rejects" + suffix)


def output_schema(labels: dict[str, list[str]]) -> pa.Schema:
    fields = [pa.field("row", pa.int64()), pa.field("claim_id", pa.string())]
    for task in labels:
        fields += [pa.field(task, pa.string()), pa.field(f"{task}_probability", pa.float64())]
    fields += [
        pa.field("route", pa.string()),
        pa.field("route_reason", pa.string()),
        pa.field("needs_review", pa.bool_()),
        pa.field("review_reasons", pa.string()),
        pa.field("model_version", pa.string()),
    ]
    return pa.schema(fields)


def load_scoring_model(
    model_dir: Path | None,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    precision: str = "auto",
) -> LoadedCheckpoint:
    """The checkpoint on the fastest device asked for. `precision` auto is bf16 on a GPU and on
    a CPU with native bf16 (it moves no metric by more than a tenth of a point: see
    docs/benchmarks.md), else fp32. Unlike the service, scoring never falls back to the base
    model: a backlog scored by the wrong model is worse than none."""
    if model_dir is None:
        registry = Registry(DataSettings().registry_dir)
        version = registry.champion()
        if version is None:
            raise ScoringError("no --model and the registry has no champion")
        model_dir = registry.checkpoint(version)
    if precision not in ("auto", "bf16", "fp32"):
        raise ScoringError(f"--precision: {precision!r} is not auto, bf16 or fp32")
    loaded = load_checkpoint(model_dir)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    predictor = loaded.predictor
    predictor.model.to(device)
    predictor.batch_size = batch_size or (1024 if device == "cuda" else 64)
    predictor.bf16 = precision == "bf16" or (precision == "auto" and cpu_has_bf16())
    return loaded


@dataclass
class Chunk:
    """One chunk after the CPU work: the claims to score, and the rows already rejected."""

    index: int
    rows: int
    numbers: list[int | None] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    rejects: list[dict[str, object]] = field(default_factory=list)
    prepared: PreparedClaims | None = None
    done: bool = False


class BacklogScorer:
    def __init__(
        self,
        predictor: TunedPredictor,
        config: SpecialistConfig,
        *,
        chunk_rows: int = 16_384,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """`progress(rows)` is told how many more input rows are done, chunk by chunk."""
        self.predictor = predictor
        self.config = config
        self.chunk_rows = chunk_rows
        self.progress = progress or (lambda rows: None)
        labels = {task.column for task in config.tasks}
        self.skip = labels | set(config.input.exclude)
        self.skip |= {config.split.column} if config.split.column else set()
        self.schema = output_schema(predictor.labels)

    def score(
        self, source: Path, out: Path, rejects: Path | None = None, *, restart: bool = False
    ) -> ScoreSummary:
        started = time.perf_counter()
        source, out = Path(source), Path(out)
        rejects = rejects or rejects_path(out)
        for path in (source, out, rejects):
            table_format(path)  # an unsupported name fails now, not after hours of scoring
        parts = out.with_name(f".{out.name}.parts")
        resumed = self._open_parts(parts, source, restart)
        totals = {"rows": 0, "scored": 0, "rejected": 0}
        for chunk in _prefetched(self._chunks(source, parts)):
            if not chunk.done:
                self._score_chunk(chunk, parts)
            counts = json.loads(_done_file(parts, chunk.index).read_text())
            for name in totals:
                totals[name] += counts[name]
            self.progress(counts["rows"])
        self._join(parts, out, self.schema, "scores")
        self._join(parts, rejects, REJECT_SCHEMA, "rejects")
        shutil.rmtree(parts)
        seconds = time.perf_counter() - started
        return ScoreSummary(
            **totals,
            resumed_chunks=resumed,
            output=str(out),
            rejects=str(rejects),
            model_version=self.predictor.model_version,
            precision=self.precision,
            seconds=round(seconds, 3),
            claims_per_second=round(totals["scored"] / max(seconds, 1e-9), 1),
        )

    @property
    def precision(self) -> str:
        device = next(self.predictor.model.parameters()).device
        return "bf16" if self.predictor.bf16 or device.type == "cuda" else "fp32"

    def _open_parts(self, parts: Path, source: Path, restart: bool) -> int:
        """The number of chunks a matching earlier run left done."""
        stat = source.stat()
        state = {
            "source": str(source.resolve()),
            "bytes": stat.st_size,
            "modified_ns": stat.st_mtime_ns,
            "model_version": self.predictor.model_version,
            "chunk_rows": self.chunk_rows,
        }
        if parts.exists() and (restart or not (parts / STATE_FILE).exists()):
            shutil.rmtree(parts)  # discarded, or killed before it had scored anything
        if parts.exists():
            earlier = json.loads((parts / STATE_FILE).read_text())
            if earlier != state:
                raise ScoringError(
                    f"{parts} holds an interrupted run on another input, model or chunk size; "
                    "pass --restart to discard it"
                )
            return len(list(parts.glob("*.done.json")))
        parts.mkdir(parents=True)
        _write_atomically(parts / STATE_FILE, json.dumps(state))
        return 0

    def _chunks(self, source: Path, parts: Path) -> Iterator[Chunk]:
        """Runs in the reading thread: parse, validate and tokenise chunks not done yet."""
        readable = 0  # the row number: a claim's place among the file's readable rows
        for index, rows in enumerate(batched(read_rows(source), self.chunk_rows)):
            numbers = []
            for row in rows:
                readable += not isinstance(row, Unreadable)
                numbers.append(None if isinstance(row, Unreadable) else readable)
            if _done_file(parts, index).exists():
                yield Chunk(index=index, rows=len(rows), done=True)
                continue
            yield self.prepare(rows, numbers, index)

    def prepare(self, rows: Sequence[Row], numbers: Sequence[int | None], index: int = 0) -> Chunk:
        """Rows to claims (or rejects with the reason) and model inputs: all the CPU work."""
        chunk = Chunk(index=index, rows=len(rows))
        for number, row in zip(numbers, rows, strict=True):
            if isinstance(row, Unreadable):
                where = f"line {row.line}: " if row.line else ""
                reason = where + row.reason
                chunk.rejects.append({"row": None, "claim_id": None, "reason": reason})
                continue
            try:
                claim = row_to_claim(row, self.config.input, self.skip)
            except ValidationError as error:
                claim_id = row.get(self.config.input.columns.get("claim_id", "claim_id"))
                chunk.rejects.append(
                    {
                        "row": number,
                        "claim_id": None if claim_id is None else str(claim_id),
                        "reason": describe_validation_error(error),
                    }
                )
                continue
            chunk.numbers.append(number)
            chunk.claims.append(claim)
        try:
            chunk.prepared = self.predictor.prepare(chunk.claims)
        except FeatureError:  # find the claims at fault; score the others
            kept = []
            for number, claim in zip(chunk.numbers, chunk.claims, strict=True):
                try:
                    self.predictor.features.transform([claim])
                    kept.append((number, claim))
                except FeatureError as error:
                    chunk.rejects.append(
                        {"row": number, "claim_id": claim.claim_id, "reason": str(error)}
                    )
            chunk.numbers = [number for number, _ in kept]
            chunk.claims = [claim for _, claim in kept]
            chunk.prepared = self.predictor.prepare(chunk.claims)
        return chunk

    def predict(self, chunk: Chunk) -> tuple[pa.Table, pa.Table]:
        """(scored rows, rejected rows) of a prepared chunk."""
        probabilities = self.predictor.predict_proba(chunk.prepared) if chunk.claims else {}
        rejected = pa.Table.from_pylist(chunk.rejects, schema=REJECT_SCHEMA)
        return self.scored_table(chunk, probabilities), rejected

    def scored_table(self, chunk: Chunk, probabilities: dict[str, np.ndarray]) -> pa.Table:
        """The output rows of a chunk's claims. Column by column, with no object per claim: at
        GPU speed a per-claim step would bound the whole run."""
        columns: dict[str, list] = {name: [] for name in self.schema.names}
        if chunk.claims:
            predictor, count = self.predictor, len(chunk.claims)
            chosen = chosen_labels(predictor, probabilities)
            decisions = decide_all(
                chunk.claims, probabilities, chosen, predictor.labels, self.config.policy
            )
            columns["row"] = chunk.numbers
            columns["claim_id"] = [claim.claim_id for claim in chunk.claims]
            for task, values in probabilities.items():
                names = np.asarray(predictor.labels[task], dtype=object)
                columns[task] = names[chosen[task]].tolist()
                columns[f"{task}_probability"] = values[np.arange(count), chosen[task]].tolist()
            columns["route"] = decisions.routes
            columns["route_reason"] = decisions.route_reasons
            columns["needs_review"] = [bool(reasons) for reasons in decisions.review_reasons]
            columns["review_reasons"] = [
                "; ".join(f"{code}: {detail}" for code, detail in reasons)
                for reasons in decisions.review_reasons
            ]
            columns["model_version"] = [predictor.model_version] * count
        return pa.table(columns, schema=self.schema)

    def _score_chunk(self, chunk: Chunk, parts: Path) -> None:
        scored, rejected = self.predict(chunk)
        _write_part(parts, chunk.index, "scores", scored)
        _write_part(parts, chunk.index, "rejects", rejected)
        counts = {"rows": chunk.rows, "scored": len(chunk.claims), "rejected": len(chunk.rejects)}
        assert counts["rows"] == counts["scored"] + counts["rejected"]
        _write_atomically(_done_file(parts, chunk.index), json.dumps(counts))

    @staticmethod
    def _join(parts: Path, destination: Path, schema: pa.Schema, kind: str) -> None:
        """Joins the parts in order into a temporary file, then renames it into place."""
        temporary = destination.with_name(f".joining-{destination.name}")
        with TableWriter(temporary, schema) as writer:
            for part in sorted(parts.glob(f"*.{kind}.parquet")):
                writer.write(pq.read_table(part))
        os.replace(temporary, destination)


def _done_file(parts: Path, index: int) -> Path:
    return parts / f"{index:08d}.done.json"


def _write_part(parts: Path, index: int, kind: str, table: pa.Table) -> None:
    path = parts / f"{index:08d}.{kind}.parquet"
    temporary = path.with_suffix(".tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _prefetched(chunks: Iterator[Chunk], depth: int = 1) -> Iterator[Chunk]:
    """Prepares up to `depth` chunks ahead in a thread; its errors surface here."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    finished = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        ready.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(finished)
        except BaseException as error:  # handed to the consumer, which raises it
            ready.put(error)

    worker = threading.Thread(target=produce, name="claims-prefetch", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not finished:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)

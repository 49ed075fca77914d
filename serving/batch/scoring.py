"""Scoring a backlog file: streamed in chunks, resumable, every row scored or rejected.

Each chunk is written to a part file and then marked done, so an interrupted run resumes at the
first chunk not marked and never scores one twice. While the model runs on one chunk, the next
ones are validated, tokenised and given their structured features and boosted-partner scores:
in a second thread, or in a pool of processes when the model is on a GPU and that CPU work
would otherwise bound the run. At the end the parts are joined into the output and the rejects
file, and the counts always add up.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from pydantic import ValidationError

from claims.data.dataset import row_to_claim
from claims.data.streams import (
    Piece,
    Row,
    TableWriter,
    Unreadable,
    chunked,
    read_pieces,
    rows_of,
)
from claims.data.tables import SUPPORTED_SUFFIXES, table_format
from claims.domain.config import describe_validation_error
from claims.domain.decision import decide_all, policy_fields
from claims.domain.language import LanguageDetector
from claims.domain.triage import chosen_labels
from claims.model.checkpoint import LoadedCheckpoint, load_checkpoint
from claims.model.features import FeatureError
from claims.model.predictor import ClaimPreparer, PreparedClaims, TunedPredictor
from claims.store.data_settings import DataSettings
from claims.store.files import write_atomically
from claims.store.registry import Registry
from schemas.claim import Claim
from schemas.config import SpecialistConfig
from schemas.scoring import Precision, ScoreSummary
from serving.batch.explained import explain_rows, explanation_fields

REJECT_SCHEMA = pa.schema([("row", pa.int64()), ("claim_id", pa.string()), ("reason", pa.string())])
STATE_FILE = "state.json"


class ScoringError(RuntimeError):
    """A run that cannot start or resume; the message says what to do."""


def rejects_path(out: Path) -> Path:
    """`scores.csv` -> `scores.rejects.csv`, `scores.jsonl.gz` -> `scores.rejects.jsonl.gz`."""
    table_format(out)
    suffix = next(s for s in SUPPORTED_SUFFIXES[::-1] if out.name.lower().endswith(s))
    return out.with_name(out.name[: -len(suffix)] + ".rejects" + suffix)


def output_schema(labels: dict[str, list[str]], explain: bool = False) -> pa.Schema:
    """The output's columns; `explain` adds those of serving/batch/explained.py after them.
    `language` and `language_source` say how each claim was read, as the service's answer
    does: its own tag (`given`), else the one detected from its narrative (`detected`)."""
    fields = [pa.field("row", pa.int64()), pa.field("claim_id", pa.string())]
    for task in labels:
        fields += [pa.field(task, pa.string()), pa.field(f"{task}_probability", pa.float64())]
    fields += [
        pa.field("route", pa.string()),
        pa.field("route_reason", pa.string()),
        pa.field("needs_review", pa.bool_()),
        pa.field("review_reasons", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("language", pa.string()),
        pa.field("language_source", pa.string()),
    ]
    return pa.schema(fields + (explanation_fields(list(labels)) if explain else []))


def load_scoring_model(
    model_dir: Path | None,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    precision: Precision = "auto",
) -> LoadedCheckpoint:
    """The checkpoint on the fastest device asked for. `precision` auto is bf16 on a GPU and on
    a CPU with native bf16 (it moves no metric by more than a tenth of a point: see
    docs/benchmarks.md), else fp32. Unlike the service, scoring never falls back to the base
    model: a backlog scored by the wrong model is worse than none."""
    if model_dir is None:
        registry = Registry.from_settings(DataSettings())
        version = registry.champion()
        if version is None:
            raise ScoringError("no --model and the registry has no champion")
        model_dir = registry.checkpoint(version)
    if precision not in get_args(Precision):
        raise ScoringError(f"--precision: {precision!r} is not auto, bf16 or fp32")
    loaded = load_checkpoint(model_dir)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    predictor = loaded.predictor
    predictor.model.to(device)
    predictor.batch_size = batch_size or (1024 if device == "cuda" else 64)
    predictor.use_precision(precision)
    return loaded


def default_workers(device: str) -> int:
    """Processes for the CPU work: none beside a CPU model, which needs every core itself (a
    thread prepares the next chunk); beside a GPU every core but two (the model's and the
    reader's)."""
    if device != "cuda":
        return 1
    return max(1, len(os.sched_getaffinity(0)) - 2)


@dataclass
class Chunk:
    """One chunk after the CPU work: the claims to score as arrays (no objects per claim, so a
    chunk crosses between processes cheaply), and the rows already rejected."""

    index: int
    rows: int
    numbers: list[int | None] = field(default_factory=list)
    claim_ids: list[str] = field(default_factory=list)
    fields: dict[str, np.ndarray] = field(default_factory=dict)  # what the policy reads
    languages: list[str] = field(default_factory=list)  # each claim's tag, and who said so
    language_sources: list[str] = field(default_factory=list)
    rejects: list[dict[str, object]] = field(default_factory=list)
    prepared: PreparedClaims | None = None
    claims: list[Claim] = field(default_factory=list)  # kept only to be explained
    done: bool = False


@dataclass
class Answers:
    """The model's answers for a chunk's claims: per task, probabilities and the chosen label."""

    probabilities: dict[str, np.ndarray]
    chosen: dict[str, np.ndarray]
    explanations: dict[str, list[str | None]] | None = None  # explained.py's columns


class ChunkWork:
    """The CPU work of a chunk on either side of the model: rows to claims (or rejects with the
    reason) and model inputs before it, decisions and part files after it. Holds no torch
    model, so each process of a pool keeps its own copy."""

    def __init__(
        self,
        preparer: ClaimPreparer,
        config: SpecialistConfig,
        labels: dict[str, list[str]],
        model_version: str,
        explain: bool = False,
        languages: LanguageDetector | None = None,
    ) -> None:
        self.preparer = preparer
        self.languages = languages if languages is not None else LanguageDetector()
        self.config = config
        self.labels = labels
        self.model_version = model_version
        self.explain = explain
        self.schema = output_schema(labels, explain)
        skip = {task.column for task in config.tasks} | set(config.input.exclude)
        self.skip = skip | ({config.split.column} if config.split.column else set())

    def prepare(self, rows: Sequence[Row], numbers: Sequence[int | None], index: int = 0) -> Chunk:
        chunk = Chunk(index=index, rows=len(rows))
        claims = []
        for number, row in zip(numbers, rows, strict=True):
            if isinstance(row, Unreadable):
                where = f"line {row.line}: " if row.line else ""
                reason = _writable(where + row.reason)
                chunk.rejects.append({"row": None, "claim_id": None, "reason": reason})
                continue
            try:
                claim = row_to_claim(row, self.config.input, self.skip)
            except ValidationError as error:
                claim_id = row.get(self.config.input.columns.get("claim_id", "claim_id"))
                chunk.rejects.append(
                    {
                        "row": number,
                        "claim_id": None if claim_id is None else _writable(claim_id),
                        "reason": _writable(describe_validation_error(error)),
                    }
                )
                continue
            chunk.numbers.append(number)
            claims.append(claim)
        try:
            chunk.prepared = self.preparer.prepare(claims)
        except FeatureError:  # find the claims at fault; score the others
            kept = []
            for number, claim in zip(chunk.numbers, claims, strict=True):
                try:
                    self.preparer.features.transform([claim])
                    kept.append((number, claim))
                except FeatureError as error:
                    chunk.rejects.append(
                        {"row": number, "claim_id": claim.claim_id, "reason": _writable(error)}
                    )
            chunk.numbers = [number for number, _ in kept]
            claims = [claim for _, claim in kept]
            chunk.prepared = self.preparer.prepare(claims)
        chunk.claim_ids = [claim.claim_id for claim in claims]
        chunk.fields = policy_fields(claims, self.config.policy)
        readings = [self.languages.read(claim) for claim in claims]
        chunk.languages = [reading.tag for reading in readings]
        chunk.language_sources = [reading.source for reading in readings]
        chunk.claims = claims if self.explain else []
        return chunk

    def scored_table(self, chunk: Chunk, answers: Answers) -> pa.Table:
        """The output rows of a chunk's claims. Column by column, with no object per claim: at
        GPU speed a per-claim step would bound the whole run."""
        columns: dict[str, list] = {name: [] for name in self.schema.names}
        if chunk.claim_ids:
            count, chosen = len(chunk.claim_ids), answers.chosen
            decisions = decide_all(
                chunk.fields, answers.probabilities, chosen, self.labels, self.config.policy
            )
            columns["row"] = chunk.numbers
            columns["claim_id"] = chunk.claim_ids
            for task, values in answers.probabilities.items():
                names = np.asarray(self.labels[task], dtype=object)
                columns[task] = names[chosen[task]].tolist()
                columns[f"{task}_probability"] = values[np.arange(count), chosen[task]].tolist()
            columns["route"] = decisions.routes
            columns["route_reason"] = decisions.route_reasons
            columns["needs_review"] = [bool(reasons) for reasons in decisions.review_reasons]
            columns["review_reasons"] = [
                "; ".join(f"{code}: {detail}" for code, detail, _ in reasons)
                for reasons in decisions.review_reasons
            ]
            columns["model_version"] = [self.model_version] * count
            columns["language"] = chunk.languages
            columns["language_source"] = chunk.language_sources
            if self.explain:
                if answers.explanations is None:
                    raise ValueError("a chunk to explain reached the writer unexplained")
                columns.update(answers.explanations)
        return pa.table(columns, schema=self.schema)

    def write(self, chunk: Chunk, answers: Answers, parts: Path) -> dict[str, int]:
        """Writes the chunk's part files, then marks it done; returns its counts."""
        _write_part(parts, chunk.index, "scores", self.scored_table(chunk, answers))
        rejected = pa.Table.from_pylist(chunk.rejects, schema=REJECT_SCHEMA)
        _write_part(parts, chunk.index, "rejects", rejected)
        counts = {
            "rows": chunk.rows,
            "scored": len(chunk.claim_ids),
            "rejected": len(chunk.rejects),
        }
        assert counts["rows"] == counts["scored"] + counts["rejected"]
        write_atomically(_done_file(parts, chunk.index), json.dumps(counts))
        return counts


class BacklogScorer:
    def __init__(
        self,
        predictor: TunedPredictor,
        config: SpecialistConfig,
        *,
        chunk_rows: int = 16_384,
        workers: int = 1,
        progress: Callable[[int], None] | None = None,
        explain: bool = False,
        languages: LanguageDetector | None = None,
    ) -> None:
        """`workers`: 1 prepares the next chunk in a thread beside the model; more run the CPU
        work on both sides of the model in that many processes. `progress(rows)` is told how
        many more input rows are done, chunk by chunk. `explain`: each row's top factors as
        columns too (serving/batch/explained.py), computed beside the model, chunk by chunk.
        `languages` reads the language of claims that give none, as the service does
        (`LanguageSettings`); default: its default languages and confidence."""
        self.predictor = predictor
        self.config = config
        self.chunk_rows = chunk_rows
        self.workers = workers
        self.progress = progress or (lambda rows: None)
        self.explain = explain
        self.work = ChunkWork(
            predictor.preparer,
            config,
            predictor.labels,
            predictor.model_version,
            explain,
            languages,
        )
        self._clock = {"model": 0.0, "waiting": 0.0}  # seconds of the current run

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
        self._clock = {"model": 0.0, "waiting": 0.0}
        for counts in self._scored_chunks(source, parts):
            for name in totals:
                totals[name] += counts[name]
            self.progress(counts["rows"])
        self._join(parts, out, self.work.schema, "scores")
        self._join(parts, rejects, REJECT_SCHEMA, "rejects")
        shutil.rmtree(parts)
        seconds = time.perf_counter() - started
        return ScoreSummary(
            **totals,
            resumed_chunks=resumed,
            output=str(out),
            rejects=str(rejects),
            model_version=self.predictor.model_version,
            precision=self.predictor.running_precision,
            seconds=round(seconds, 3),
            claims_per_second=round(totals["scored"] / max(seconds, 1e-9), 1),
            workers=self.workers,
            model_seconds=round(self._clock["model"], 3),
            waiting_seconds=round(self._clock["waiting"], 3),
        )

    def _open_parts(self, parts: Path, source: Path, restart: bool) -> int:
        """The number of chunks a matching earlier run left done."""
        stat = source.stat()
        state = {
            "source": str(source.resolve()),
            "bytes": stat.st_size,
            "modified_ns": stat.st_mtime_ns,
            "model_version": self.predictor.model_version,
            "chunk_rows": self.chunk_rows,
            # parts read with other languages, or before languages were read, are not reused
            "languages": {
                "detect": list(self.work.languages.languages),
                "min_confidence": self.work.languages.min_confidence,
            },
        }
        if self.explain:  # parts of a plain run have other columns; a plain run's state is kept
            state["explain"] = True
        if parts.exists() and (restart or not (parts / STATE_FILE).exists()):
            shutil.rmtree(parts)  # discarded, or killed before it had scored anything
        if parts.exists():
            earlier = json.loads((parts / STATE_FILE).read_text())
            if earlier != state:
                raise ScoringError(
                    f"{parts} holds an interrupted run on another input, model, chunk size or "
                    "languages to detect; pass --restart to discard it"
                )
            return len(list(parts.glob("*.done.json")))
        parts.mkdir(parents=True)
        write_atomically(parts / STATE_FILE, json.dumps(state))
        return 0

    def _scored_chunks(self, source: Path, parts: Path) -> Iterator[dict[str, int]]:
        """Each chunk's counts in file order, once its part files are written (or were, by an
        earlier run)."""
        if self.workers <= 1:
            chunks = _prefetched(self._chunks(source, parts, self._prepare_pieces))
            while (chunk := self._timed("waiting", next, chunks, None)) is not None:
                if chunk.done:
                    yield _done_counts(parts, chunk.index)
                else:
                    yield self.work.write(chunk, self._timed("model", self.answer, chunk), parts)
            return
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),  # never fork a process using CUDA
            initializer=_start_worker,
            initargs=(self.work,),
        )
        try:
            yield from self._scored_in_pool(pool, source, parts)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _scored_in_pool(
        self, pool: ProcessPoolExecutor, source: Path, parts: Path
    ) -> Iterator[dict[str, int]]:
        """The reading thread hands chunks to the pool to prepare; here each prepared chunk
        goes through the model and back to the pool to be written. Only the model's work and
        the chunks' arrays pass through this process."""

        def prepare(pieces: list[Piece], numbers: list[int | None], index: int) -> Future:
            return pool.submit(_prepare_in_worker, _packed(pieces), numbers, index)

        writing: deque[Future | dict[str, int]] = deque()
        chunks = _prefetched(self._chunks(source, parts, prepare), 2 * self.workers)
        while (pending := self._timed("waiting", next, chunks, None)) is not None:
            chunk = self._timed("waiting", _result, pending)
            if chunk.done:
                writing.append(_done_counts(parts, chunk.index))
            else:
                answers = self._timed("model", self.answer, chunk)
                chunk.prepared, chunk.claims = None, []  # the writer needs none of it
                writing.append(pool.submit(_write_in_worker, chunk, answers, parts))
            while writing and (len(writing) > self.workers or _finished(writing[0])):
                yield _counts(writing.popleft())
        while writing:
            yield _counts(writing.popleft())

    def _chunks(
        self, source: Path, parts: Path, prepare: Callable[[list[Piece], list, int], object]
    ) -> Iterator:
        """Runs in the reading thread: parse the chunks not done yet and `prepare` each."""
        readable = 0  # the row number: a claim's place among the file's readable rows
        for index, pieces in enumerate(chunked(read_pieces(source), self.chunk_rows)):
            numbers: list[int | None] = []
            for piece in pieces:
                if isinstance(piece, pa.RecordBatch):
                    numbers += range(readable + 1, readable + piece.num_rows + 1)
                    readable += piece.num_rows
                else:
                    readable += not isinstance(piece, Unreadable)
                    numbers.append(None if isinstance(piece, Unreadable) else readable)
            if _done_file(parts, index).exists():
                yield Chunk(index=index, rows=len(numbers), done=True)
                continue
            yield prepare(pieces, numbers, index)

    def prepare(self, rows: Sequence[Row], numbers: Sequence[int | None], index: int = 0) -> Chunk:
        return self.work.prepare(rows, numbers, index)

    def _prepare_pieces(self, pieces: list[Piece], numbers: list[int | None], index: int) -> Chunk:
        return self.work.prepare(rows_of(pieces), numbers, index)

    def _timed(self, clock: str, function: Callable, *arguments: object) -> Any:
        """Calls `function`, adding its seconds to the run's `clock` (model or waiting)."""
        started = time.perf_counter()
        try:
            return function(*arguments)
        finally:
            self._clock[clock] += time.perf_counter() - started

    def answer(self, chunk: Chunk) -> Answers:
        """The model's part: probabilities (blended with the partner's) and chosen labels, and
        with `explain` the explanation columns, whose phrase occlusion is model work too."""
        if not chunk.claim_ids:
            return Answers({}, {})
        if chunk.prepared is None:
            raise ValueError("a chunk with claims reached the model unprepared")
        probabilities = self.predictor.predict_proba(chunk.prepared)
        answers = Answers(probabilities, chosen_labels(self.predictor, probabilities))
        if self.explain:
            answers.explanations = explain_rows(
                chunk.claims,
                chunk.fields,
                probabilities,
                answers.chosen,
                self.predictor,
                self.config.policy,
            )
        return answers

    def predict(self, chunk: Chunk) -> tuple[pa.Table, pa.Table]:
        """(scored rows, rejected rows) of a prepared chunk."""
        rejected = pa.Table.from_pylist(chunk.rejects, schema=REJECT_SCHEMA)
        return self.work.scored_table(chunk, self.answer(chunk)), rejected

    @staticmethod
    def _join(parts: Path, destination: Path, schema: pa.Schema, kind: str) -> None:
        """Joins the parts in order into a temporary file, then renames it into place."""
        temporary = destination.with_name(f".joining-{destination.name}")
        with TableWriter(temporary, schema) as writer:
            for part in sorted(parts.glob(f"*.{kind}.parquet")):
                writer.write(pq.read_table(part))
        os.replace(temporary, destination)


def _writable(value: object, limit: int = 1000) -> str:
    """Text a rejects file can hold whatever the row held: a lone surrogate (a JSON "\\ud800")
    escaped, since Arrow writes only UTF-8, and a number too long to print cut short."""
    try:
        text = str(value)
    except ValueError:  # an int past Python's digit limit
        text = f"an integer of {value.bit_length()} bits"  # type: ignore[attr-defined]
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_worker_work: ChunkWork | None = None  # in each process of a pool


def _start_worker(work: ChunkWork) -> None:
    """One core per process for the tokenizer and LightGBM: many processes share the machine."""
    global _worker_work
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if work.preparer.partner is not None:
        work.preparer.partner.threads = 1
    _worker_work = work


def _prepare_in_worker(packed: list, numbers: list[int | None], index: int) -> Chunk:
    assert _worker_work is not None, "the pool starts every process with _start_worker"
    return _worker_work.prepare(rows_of(_unpacked(packed)), numbers, index)


def _packed(pieces: list[Piece]) -> list:
    """Arrow batches as IPC streams: a slice pickled as a batch would carry the whole block it
    was cut from, and rows turned into Python values here would cost this process their time."""
    packed: list = []
    for piece in pieces:
        if isinstance(piece, pa.RecordBatch):
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, piece.schema) as writer:
                writer.write_batch(piece)
            packed.append(sink.getvalue())
        else:
            packed.append(piece)
    return packed


def _unpacked(packed: list) -> list[Piece]:
    return [
        pa.ipc.open_stream(item).read_next_batch() if isinstance(item, pa.Buffer) else item
        for item in packed
    ]


def _write_in_worker(chunk: Chunk, answers: Answers, parts: Path) -> dict[str, int]:
    assert _worker_work is not None, "the pool starts every process with _start_worker"
    return _worker_work.write(chunk, answers, parts)


def _result(item: Future | Chunk) -> Chunk:
    return item.result() if isinstance(item, Future) else item


def _finished(item: Future | dict[str, int]) -> bool:
    return not isinstance(item, Future) or item.done()


def _counts(item: Future | dict[str, int]) -> dict[str, int]:
    return item.result() if isinstance(item, Future) else item


def _done_counts(parts: Path, index: int) -> dict[str, int]:
    return json.loads(_done_file(parts, index).read_text())


def _done_file(parts: Path, index: int) -> Path:
    return parts / f"{index:08d}.done.json"


def _write_part(parts: Path, index: int, kind: str, table: pa.Table) -> None:
    path = parts / f"{index:08d}.{kind}.parquet"
    temporary = path.with_suffix(".tmp")
    pq.write_table(table, temporary)
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

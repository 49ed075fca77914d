"""Claim files read row by row and written part by part, so memory stays flat for any size.

Rows that cannot be parsed are handed on as `Unreadable`, with their line, never skipped.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from claims.data.tables import TableFormatError, table_format

READ_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class Unreadable:
    """A line that is not a row: malformed CSV or JSON."""

    line: int | None
    reason: str


Row = dict[str, Any] | Unreadable
Piece: TypeAlias = pa.RecordBatch | Row  # many rows still in Arrow, or one row


def piece_rows(piece: Piece) -> int:
    return piece.num_rows if isinstance(piece, pa.RecordBatch) else 1


def rows_of(pieces: Sequence[Piece]) -> list[Row]:
    rows: list[Row] = []
    for piece in pieces:
        if isinstance(piece, pa.RecordBatch):
            rows += piece.to_pylist()
        else:
            rows.append(piece)
    return rows


def _open_text(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def count_rows(path: str | Path) -> int | None:
    """Rows in the file, for a progress bar: exact for Parquet, lines for text (a narrative with
    line breaks inside quotes makes that an overestimate)."""
    path = Path(path)
    kind = table_format(path)
    if kind == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    lines = 0
    with opener(path, "rb") as handle:
        while block := handle.read(READ_BLOCK_BYTES):
            lines += block.count(b"\n")
    return max(lines - (kind == "csv"), 0)


def read_rows(path: str | Path) -> Iterator[Row]:
    """Every row of a CSV, JSONL or Parquet file in order, as plain values; CSV cells as text."""
    for piece in read_pieces(path):
        yield from rows_of([piece])


def read_pieces(path: str | Path) -> Iterator[Piece]:
    """The rows of `read_rows`, those that Arrow parsed still in Arrow batches: turning them
    into Python values can then happen elsewhere (in another process)."""
    path = Path(path)
    kind = table_format(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if kind == "csv":
        yield from _csv_pieces(path)
    elif kind == "jsonl":
        yield from _jsonl_rows(path)
    else:
        yield from pq.ParquetFile(path).iter_batches(batch_size=8192)


def csv_column_names(path: Path) -> list[str]:
    with _open_text(path) as handle:
        return next(csv.reader(handle), [])


def _csv_pieces(path: Path) -> Iterator[Piece]:
    names = csv_column_names(path)
    if not names:
        return
    unreadable: list[Unreadable] = []

    def keep_bad_row(row: pa_csv.InvalidRow) -> str:
        unreadable.append(
            Unreadable(
                line=row.number,
                reason=f"malformed CSV: {row.actual_columns} fields where the header has "
                f"{row.expected_columns}",
            )
        )
        return "skip"  # counted and reported as a reject, never lost

    reader = pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(block_size=READ_BLOCK_BYTES, use_threads=False),
        parse_options=pa_csv.ParseOptions(
            newlines_in_values=True, invalid_row_handler=keep_bad_row
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in names}, strings_can_be_null=True
        ),
    )
    try:
        for batch in reader:
            yield from unreadable
            unreadable.clear()
            yield batch
    except pa.ArrowInvalid as error:
        raise TableFormatError(f"{path}: cannot be read as CSV: {error}") from error
    yield from unreadable


def _jsonl_rows(path: Path) -> Iterator[Row]:
    """Line by line as bytes, each decoded alone: one line that is not UTF-8, or a number past
    Python's 4,300-digit limit, is that line's reject, not the file's failure."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                yield Unreadable(line=number, reason=f"not UTF-8 at byte {error.start}")
                continue
            except json.JSONDecodeError as error:
                yield Unreadable(line=number, reason=f"malformed JSON: {error.msg}")
                continue
            except (ValueError, RecursionError) as error:  # digit limit; nesting too deep
                yield Unreadable(line=number, reason=f"unreadable JSON: {error}")
                continue
            if not isinstance(row, dict):
                yield Unreadable(line=number, reason="a JSON line must be an object")
                continue
            yield row


class TableWriter:
    """Appends tables of one schema to a CSV, JSONL or Parquet file (gzip for text); the file
    exists, header included, even when nothing is written."""

    def __init__(self, path: str | Path, schema: pa.Schema) -> None:
        self.path = Path(path)
        self.kind = table_format(self.path)
        self.schema = schema
        self._stack = ExitStack()

    def __enter__(self) -> TableWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        compressed = self.path.name.lower().endswith(".gz")
        if self.kind == "parquet":
            self._writer = self._stack.enter_context(pq.ParquetWriter(self.path, self.schema))
        elif self.kind == "csv":
            sink = self._stack.enter_context(
                pa.CompressedOutputStream(str(self.path), "gzip")
                if compressed
                else pa.OSFile(str(self.path), "wb")
            )
            self._writer = self._stack.enter_context(pa_csv.CSVWriter(sink, self.schema))
        else:
            self._text = self._stack.enter_context(
                gzip.open(self.path, "wt", encoding="utf-8")
                if compressed
                else open(self.path, "w", encoding="utf-8")
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def write(self, table: pa.Table) -> None:
        table = table.select(self.schema.names).cast(self.schema)
        if self.kind == "jsonl":
            for row in table.to_pylist():
                self._text.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        else:
            self._writer.write_table(table)


def chunked(pieces: Iterator[Piece], size: int) -> Iterator[list[Piece]]:
    """The pieces regrouped into chunks of `size` rows (the last may be shorter), a batch
    sliced where a chunk ends inside it."""
    chunk: list[Piece] = []
    count = 0
    for piece in pieces:
        rest: Piece | None = piece
        while rest is not None:
            rows = piece_rows(rest)
            if count + rows < size:
                chunk.append(rest)
                count, rest = count + rows, None
                continue
            take = size - count
            if isinstance(rest, pa.RecordBatch):
                head, tail = rest.slice(0, take), rest.slice(take)
                rest = tail if tail.num_rows else None
            else:
                head, rest = rest, None
            yield [*chunk, head]
            chunk, count = [], 0
    if chunk:
        yield chunk

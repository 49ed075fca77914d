"""Files read in pieces (Arrow batches, single rows) and regrouped into chunks of exact size."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from claims.data.streams import Unreadable, chunked, piece_rows, read_pieces, read_rows, rows_of


def batch(first: int, count: int) -> pa.RecordBatch:
    return pa.record_batch({"claim_id": [f"C-{i}" for i in range(first, first + count)]})


PIECES = [batch(0, 5), Unreadable(line=7, reason="malformed CSV"), batch(5, 11), {"claim_id": "J"}]


@pytest.mark.parametrize("size", [1, 3, 6, 16, 17, 100])
def test_chunks_hold_every_row_once_in_order_and_all_but_the_last_are_full(size: int) -> None:
    chunks = list(chunked(iter(PIECES), size))
    counts = [sum(piece_rows(piece) for piece in chunk) for chunk in chunks]
    assert all(count == size for count in counts[:-1]) and 0 < counts[-1] <= size
    assert [row for chunk in chunks for row in rows_of(chunk)] == rows_of(PIECES)


def test_a_csv_arrives_in_batches_with_its_unreadable_lines(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_text("claim_id,description\nC-1,hail\nC-2,three,fields\nC-3,flood\n")
    pieces = list(read_pieces(path))
    assert any(isinstance(piece, pa.RecordBatch) for piece in pieces)
    rows = list(read_rows(path))
    assert rows_of(pieces) == rows
    assert [row["claim_id"] for row in rows if isinstance(row, dict)] == ["C-1", "C-3"]
    assert [row.line for row in rows if isinstance(row, Unreadable)] == [3]

"""Reading and writing claim tables in the formats insurers export: CSV, JSONL and Parquet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".parquet")


class TableFormatError(ValueError):
    """A file whose format cannot be told from its name, or that cannot be parsed."""


def table_format(path: Path) -> str:
    name = path.name.lower()
    for suffix in SUPPORTED_SUFFIXES:
        if name.endswith(suffix):
            return suffix.split(".")[1]
    raise TableFormatError(
        f"{path}: unsupported file type; use one of {', '.join(SUPPORTED_SUFFIXES)}"
    )


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a whole table, every column as text or number exactly as written (no date guessing)."""
    path = Path(path)
    kind = table_format(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        if kind == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        if kind == "jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_parquet(path)
    except (ValueError, OSError) as error:
        raise TableFormatError(f"{path}: cannot be read as {kind}: {error}") from error


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    kind = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif kind == "jsonl":
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    else:
        frame.to_parquet(path, index=False)
    return path

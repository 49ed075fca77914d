"""Backlog scoring: every row scored or rejected, in any format, resumable without rescoring."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from claims.cli.main import app
from claims.data.dataset import row_to_claim
from claims.data.synthetic import generate_claims
from claims.data.tables import write_table
from claims.domain.triage import triage
from claims.model.checkpoint import LoadedCheckpoint, load_checkpoint
from serving.batch.scoring import BacklogScorer, ScoringError, rejects_path
from serving.cli import register as register_serving

register_serving(app)
runner = CliRunner()
ROWS, CHUNK = 300, 64
BAD = {5: ("initial_estimate", -3), 9: ("reported_date", "1990-01-01")}


@pytest.fixture(scope="module")
def loaded(trained_checkpoint: Path) -> LoadedCheckpoint:
    return load_checkpoint(trained_checkpoint)


def backlog(folder: Path, suffix: str) -> Path:
    """Open claims without outcomes; two invalid rows, and a malformed line in text files."""
    frame = generate_claims(ROWS, seed=21).drop(columns=["claim_type", "severity", "siu_referral"])
    frame = frame.astype({"initial_estimate": object, "reported_date": object})
    for row, (column, value) in BAD.items():
        frame.loc[row, column] = value
    path = write_table(frame, folder / f"backlog{suffix}")
    if suffix == ".csv":
        with open(path, "a") as handle:
            handle.write("CLM-X,three,fields\n")
    if suffix == ".jsonl":
        with open(path, "a") as handle:
            handle.write('{"claim_id": "CLM-Y", "description": \n')
    return path


def read(path: Path) -> pd.DataFrame:
    if ".parquet" in path.name:
        return pd.read_parquet(path)
    if ".jsonl" in path.name:
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_csv(path, dtype={"claim_id": str}, keep_default_na=False, na_values=[""])


@pytest.mark.parametrize(
    ("source_suffix", "out_suffix"),
    [(".csv", ".parquet"), (".jsonl", ".csv.gz"), (".parquet", ".jsonl")],
)
def test_every_row_is_scored_or_rejected_with_its_reason(
    loaded: LoadedCheckpoint, tmp_path: Path, source_suffix: str, out_suffix: str
) -> None:
    source = backlog(tmp_path, source_suffix)
    out = tmp_path / f"scores{out_suffix}"
    summary = BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK).score(source, out)
    malformed = source_suffix != ".parquet"
    assert summary.rows == ROWS + malformed
    assert (summary.scored, summary.rejected) == (ROWS - len(BAD), len(BAD) + malformed)
    scores, rejects = read(out), read(rejects_path(out))
    assert len(scores) == summary.scored and len(rejects) == summary.rejected
    reasons = " ".join(rejects["reason"])
    assert "initial_estimate" in reasons and "reported_date" in reasons
    assert ("malformed" in reasons) is malformed
    frame = generate_claims(ROWS, seed=21)
    assert list(scores["claim_id"]) == [c for i, c in enumerate(frame["claim_id"]) if i not in BAD]
    assert set(scores["model_version"]) == {loaded.manifest.model_version}

    first_row = frame.drop(columns=["claim_type", "severity", "siu_referral"]).iloc[0]
    claim = row_to_claim(first_row.to_dict(), loaded.config.input, set())
    served = triage([claim], loaded.predictor, loaded.config.policy)[0]
    first = scores.iloc[0]
    for task, prediction in served.predictions.items():
        assert str(first[task]) == prediction.label
        assert first[f"{task}_probability"] == pytest.approx(prediction.probability, abs=1e-5)
    assert first["route"] == served.decision.route


def test_a_pool_of_preparing_processes_scores_exactly_as_the_reading_thread(
    loaded: LoadedCheckpoint, tmp_path: Path
) -> None:
    source = backlog(tmp_path, ".csv")
    by_thread, by_pool = tmp_path / "thread.csv", tmp_path / "pool.csv"
    BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK).score(source, by_thread)
    pool = BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK, workers=2)
    summary = pool.score(source, by_pool)
    assert (summary.rows, summary.rejected) == (ROWS + 1, len(BAD) + 1)
    assert summary.workers == 2
    assert 0 < summary.model_seconds + summary.waiting_seconds <= summary.seconds
    pd.testing.assert_frame_equal(read(by_pool), read(by_thread))
    pd.testing.assert_frame_equal(read(rejects_path(by_pool)), read(rejects_path(by_thread)))


class Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_without_scoring_a_chunk_twice(
    loaded: LoadedCheckpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = backlog(tmp_path, ".csv")
    whole = tmp_path / "whole.csv"
    BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK).score(source, whole)

    chunks_done = []

    def stop_after_two(rows: int) -> None:
        chunks_done.append(rows)
        if len(chunks_done) == 2:
            raise Interrupted

    out = tmp_path / "resumed.csv"
    with pytest.raises(Interrupted):
        scorer = BacklogScorer(
            loaded.predictor, loaded.config, chunk_rows=CHUNK, progress=stop_after_two
        )
        scorer.score(source, out)
    assert not out.exists()

    calls = []
    original = loaded.predictor.predict_proba
    monkeypatch.setattr(
        loaded.predictor, "predict_proba", lambda claims: calls.append(1) or original(claims)
    )
    summary = BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK).score(source, out)
    chunks = -(-(ROWS + 1) // CHUNK)
    assert summary.resumed_chunks == 2 and len(calls) == chunks - 2
    assert summary.rows == summary.scored + summary.rejected == ROWS + 1
    pd.testing.assert_frame_equal(read(out), read(whole))
    pd.testing.assert_frame_equal(read(rejects_path(out)), read(rejects_path(whole)))
    assert not list(tmp_path.glob(".resumed.csv.parts"))


def test_leftovers_of_another_run_are_never_mixed_in(
    loaded: LoadedCheckpoint, tmp_path: Path
) -> None:
    source, out = backlog(tmp_path, ".csv"), tmp_path / "scores.csv"

    def interrupt(rows: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK, progress=interrupt).score(
            source, out
        )
    other_chunking = BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK * 2)
    with pytest.raises(ScoringError, match="--restart"):
        other_chunking.score(source, out)
    assert other_chunking.score(source, out, restart=True).resumed_chunks == 0


def test_the_score_command_reports_counts_that_add_up(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    source, out = backlog(tmp_path, ".csv"), tmp_path / "scores.jsonl"
    result = runner.invoke(
        app, ["score", str(source), "--model", str(trained_checkpoint), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"{ROWS + 1:,} rows in: {ROWS - 2:,} scored" in result.output
    assert (tmp_path / "scores.rejects.jsonl").is_file()
    bad = runner.invoke(app, ["score", str(source), "--model", str(tmp_path), "--out", str(out)])
    assert bad.exit_code == 2 and "checkpoint_missing" in bad.output

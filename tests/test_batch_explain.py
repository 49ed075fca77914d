"""`claims score --explain`: every scored row carries its top factors as columns; a plain run's
output is unchanged, and one bad row still fails only itself."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import serving.batch.explained as explained_module
from claims.cli.main import app
from claims.data.synthetic import generate_claims
from claims.data.tables import write_table
from claims.model.checkpoint import LoadedCheckpoint, load_checkpoint
from schemas.claim import Claim
from schemas.explanation import Explanation
from serving.app import create_app
from serving.batch.explained import FACTOR, FACTORS, PER_TASK, explanation_fields
from serving.batch.scoring import BacklogScorer, ScoringError, output_schema, rejects_path
from serving.cli import register as register_serving
from serving.settings import ServiceSettings
from tests.test_batch_jobs import champion, finished  # noqa: F401  (champion: a fixture)

register_serving(app)
runner = CliRunner()
ROWS, CHUNK = 24, 10
BAD_ROW = 4  # claimant_age 140: rejected, explained or not


@pytest.fixture(scope="module")
def loaded(trained_checkpoint: Path) -> LoadedCheckpoint:
    return load_checkpoint(trained_checkpoint)


def backlog(folder: Path, suffix: str = ".csv", rows: int = ROWS) -> Path:
    frame = generate_claims(rows, seed=41).drop(columns=["claim_type", "severity", "siu_referral"])
    frame = frame.astype({"claimant_age": object})
    frame.loc[BAD_ROW, "claimant_age"] = 140
    return write_table(frame, folder / f"backlog{suffix}")


def read(path: Path) -> pd.DataFrame:
    if ".jsonl" in path.name:
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_csv(path, dtype={"claim_id": str}, keep_default_na=False, na_values=[""])


def factors(cell: object) -> list[tuple[float, str, str, str | None]]:
    """(weight, kind, name, value) of each factor; the whole cell must parse (CSV reads an
    empty one as missing)."""
    text = "" if pd.isna(cell) else str(cell)
    found = list(FACTOR.finditer(text))
    assert FACTORS.join(match.group(0) for match in found) == text, text
    return [
        (
            float(match["weight"]),
            match["kind"],
            json.loads(match["name"]),
            None if match["value"] is None else json.loads(match["value"]),
        )
        for match in found
    ]


def assert_explained(scores: pd.DataFrame, tasks: list[str]) -> None:
    """Every row explained: a summary naming its label, signed parseable factors, reasons."""
    for _, row in scores.iterrows():
        for task in tasks:
            assert str(row[f"{task}_explanation"]).startswith(f"{row[task]} at "), row
            raising = factors(row[f"{task}_raising"])
            lowering = factors(row[f"{task}_lowering"])
            assert raising or lowering, row
            assert all(weight > 0 for weight, *_ in raising)
            assert all(weight < 0 for weight, *_ in lowering)
            assert {kind for _, kind, *_ in raising + lowering} <= {"phrase", "field"}
        assert str(row["decision_reasons"]).startswith(f"route {row['route']}")
        assert pd.isna(row["explanation_error"]) or row["explanation_error"] == ""


def test_explained_scores_carry_every_rows_top_factors_and_change_nothing_else(
    loaded: LoadedCheckpoint, tmp_path: Path
) -> None:
    source = backlog(tmp_path)
    plain_out, explained_out = tmp_path / "plain.csv", tmp_path / "explained.csv"
    BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK).score(source, plain_out)
    summary = BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK, explain=True).score(
        source, explained_out
    )
    assert (summary.rows, summary.scored, summary.rejected) == (ROWS, ROWS - 1, 1)

    tasks = list(loaded.predictor.labels)
    plain, explained = read(plain_out), read(explained_out)
    plain_columns = output_schema(loaded.predictor.labels).names
    added = [field.name for field in explanation_fields(tasks)]
    assert list(plain.columns) == plain_columns  # without --explain: no new column
    assert list(explained.columns) == plain_columns + added
    per_task = [f"{task}_{end}" for task in tasks for end in PER_TASK]
    assert added == [*per_task, "decision_reasons", "explanation_error"]  # the documented layout
    pd.testing.assert_frame_equal(explained[plain_columns], plain)
    assert_explained(explained, tasks)
    rejected = read(rejects_path(explained_out))
    assert list(rejected["row"]) == [BAD_ROW + 1] and "claimant_age" in rejected["reason"][0]


def test_a_row_that_fails_to_be_explained_keeps_its_scores_and_says_why(
    loaded: LoadedCheckpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = backlog(tmp_path)
    victim = generate_claims(ROWS, seed=41)["claim_id"][7]
    real_explain = explained_module.explain

    def failing_on_the_victim(claims: list[Claim], *rest: Any) -> list[Explanation]:
        if any(claim.claim_id == victim for claim in claims):
            raise ValueError("a fault injected for one claim")
        return real_explain(claims, *rest)

    monkeypatch.setattr(explained_module, "explain", failing_on_the_victim)
    out = tmp_path / "scores.csv"
    summary = BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK, explain=True).score(
        source, out
    )
    assert (summary.scored, summary.rejected) == (ROWS - 1, 1)
    scores = read(out)
    failed = scores[scores["claim_id"] == victim].iloc[0]
    assert failed["explanation_error"] == "explaining failed: ValueError"
    assert not pd.isna(failed["route"]) and failed["model_version"]
    tasks = list(loaded.predictor.labels)
    assert all(pd.isna(failed[f"{task}_explanation"]) for task in tasks)
    assert pd.isna(failed["decision_reasons"])
    assert_explained(scores[scores["claim_id"] != victim], tasks)  # its chunk-mates too


class Interrupted(Exception):
    pass


def test_an_explained_run_never_resumes_a_plain_one(
    loaded: LoadedCheckpoint, tmp_path: Path
) -> None:
    source, out = backlog(tmp_path), tmp_path / "scores.csv"

    def interrupt(rows: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK, progress=interrupt).score(
            source, out
        )
    explaining = BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK, explain=True)
    with pytest.raises(ScoringError, match="--restart"):
        explaining.score(source, out)
    assert explaining.score(source, out, restart=True).scored == ROWS - 1
    assert_explained(read(out), list(loaded.predictor.labels))


def test_the_score_command_explains_with_a_pool_of_processes(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    source, out = backlog(tmp_path, ".jsonl"), tmp_path / "scores.jsonl"
    command = ["score", str(source), "--model", str(trained_checkpoint), "--out", str(out)]
    result = runner.invoke(
        app, [*command, "--explain", "--workers", "2", "--chunk-rows", str(CHUNK)]
    )
    assert result.exit_code == 0, result.output
    assert f"{ROWS:,} rows in: {ROWS - 1:,} scored" in result.output
    labels = load_checkpoint(trained_checkpoint).predictor.labels
    assert_explained(read(out), list(labels))


def test_a_batch_job_refuses_an_explain_that_is_not_a_boolean() -> None:
    with TestClient(create_app(ServiceSettings())) as client:
        upload = {"file": ("backlog.csv", b"claim_id\n1\n", "text/csv")}
        response = client.post("/v1/batch-jobs", params={"explain": "maybe"}, files=upload)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["query", "explain"]
        assert not client.app.state.store.jobs(kind="score")


@pytest.mark.slow
@pytest.mark.usefixtures("champion")
def test_a_batch_job_asked_to_explain_streams_back_explained_rows(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    source = backlog(tmp_path, rows=8)
    with TestClient(create_app(ServiceSettings())) as client:
        upload = {"file": ("backlog.csv", source.read_bytes(), "text/csv")}
        response = client.post("/v1/batch-jobs", params={"explain": "true"}, files=upload)
        assert response.status_code == 202, response.text
        job = finished(client, response.json()["job_id"])
        assert job["state"] == "succeeded", job
        assert (job["result"]["scored"], job["result"]["rejected"]) == (7, 1)
        results = client.get(f"/v1/batch-jobs/{job['job_id']}/results")
    scores = pd.read_csv(io.BytesIO(results.content), dtype={"claim_id": str})
    assert_explained(scores, list(load_checkpoint(trained_checkpoint).predictor.labels))


@pytest.mark.slow
def test_the_ray_engine_explains_as_the_local_one(trained_checkpoint: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    from serving.batch.ray_scoring import score_with_ray

    source = backlog(tmp_path, rows=12)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = score_with_ray(
            trained_checkpoint, source, tmp_path / "ray", actors=1, batch_rows=6, explain=True
        )
    finally:
        ray.shutdown()
    assert (summary.scored, summary.rejected) == (11, 1)
    scores = pd.read_parquet(tmp_path / "ray")
    labels = load_checkpoint(trained_checkpoint).predictor.labels
    added = [field.name for field in explanation_fields(list(labels))]
    assert list(scores.columns) == output_schema(labels).names + added
    assert_explained(scores, list(labels))

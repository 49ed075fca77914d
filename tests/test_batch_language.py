"""Backlog scoring says each claim's language as the service does: its own tag, else the one
detected with the service's settings; a row whose tag is not a language is rejected alone."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from claims.cli.main import app
from claims.data.dataset import row_to_claim
from claims.data.synthetic import generate_claims
from claims.data.tables import write_table
from claims.domain.language import LanguageDetector
from claims.domain.triage import triage
from claims.model.checkpoint import LoadedCheckpoint, load_checkpoint
from serving.app import create_app
from serving.batch.scoring import BacklogScorer, ScoringError, rejects_path
from serving.cli import register as register_serving
from serving.settings import ServiceSettings
from tests.test_batch_jobs import champion, finished  # noqa: F401  (champion: a fixture)

register_serving(app)
runner = CliRunner()
ROWS, CHUNK = 40, 16
GIVEN = {0: "pt_br", 1: "EN", 2: "pt-PT"}  # standardised to pt-BR, en, pt-PT
BAD = {3: "english", 5: "pt--BR"}  # not tags: these rows alone are rejected
EXPECTED = ("en", "pt")


@pytest.fixture(scope="module")
def loaded(trained_checkpoint: Path) -> LoadedCheckpoint:
    return load_checkpoint(trained_checkpoint)


def backlog(folder: Path, rows: int = ROWS) -> Path:
    """Open claims in English and Portuguese; some give their language, two give a bad one."""
    frame = generate_claims(rows, seed=12, language="mixed")
    frame = frame.drop(columns=["claim_type", "severity", "siu_referral"])
    frame["language"] = None
    for row, tag in {**GIVEN, **BAD}.items():
        if row < rows:
            frame.loc[row, "language"] = tag
    return write_table(frame, folder / "backlog.csv")


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def test_each_scored_row_says_its_language_as_the_service_reads_it(
    loaded: LoadedCheckpoint, tmp_path: Path
) -> None:
    source, out = backlog(tmp_path), tmp_path / "scores.csv"
    languages = LanguageDetector(EXPECTED)
    scorer = BacklogScorer(loaded.predictor, loaded.config, chunk_rows=CHUNK, languages=languages)
    summary = scorer.score(source, out)
    assert (summary.scored, summary.rejected) == (ROWS - len(BAD), len(BAD))

    rejects = read(rejects_path(out))
    assert [int(row) for row in rejects["row"]] == [row + 1 for row in BAD]
    assert all(reason.startswith("language: ") for reason in rejects["reason"])

    scores = read(out)
    frame = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])
    kept = frame.drop(index=list(BAD)).to_dict(orient="records")
    claims = [row_to_claim(row, loaded.config.input, set()) for row in kept]
    served = triage(claims, loaded.predictor, loaded.config.policy, languages=languages)
    assert list(scores["language"]) == [result.language.tag for result in served]  # type: ignore[union-attr]
    assert list(scores["language_source"]) == [result.language.source for result in served]  # type: ignore[union-attr]
    assert list(scores["language"][:3]) == ["pt-BR", "en", "pt-PT"]
    assert set(scores["language_source"]) == {"given", "detected"}
    detected = set(scores["language"][scores["language_source"] == "detected"])
    assert {"en", "pt"} <= detected <= {"en", "pt", "und"}


class Interrupted(Exception):
    pass


def test_a_run_resumed_with_other_languages_to_detect_starts_again(
    loaded: LoadedCheckpoint, tmp_path: Path
) -> None:
    source, out = backlog(tmp_path), tmp_path / "scores.parquet"

    def stop(rows: int) -> None:
        raise Interrupted

    english = LanguageDetector(["en"])
    with pytest.raises(Interrupted):
        BacklogScorer(
            loaded.predictor, loaded.config, chunk_rows=CHUNK, progress=stop, languages=english
        ).score(source, out)
    both = BacklogScorer(
        loaded.predictor, loaded.config, chunk_rows=CHUNK, languages=LanguageDetector(EXPECTED)
    )
    with pytest.raises(ScoringError, match="languages to detect"):
        both.score(source, out)
    assert both.score(source, out, restart=True).scored == ROWS - len(BAD)
    assert "pt" in set(pd.read_parquet(out)["language"])


def score_command(checkpoint: Path, folder: Path) -> tuple[int, str, Path]:
    source, out = backlog(folder), folder / "scores.csv"
    command = ["score", str(source), "--model", str(checkpoint), "--out", str(out)]
    result = runner.invoke(app, [*command, "--chunk-rows", str(CHUNK)])
    return result.exit_code, result.output, out


def test_the_score_command_detects_with_the_services_settings(
    trained_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output, out = score_command(trained_checkpoint, tmp_path / "default")
    assert code == 0, output
    default = read(out)
    detected = default[default["language_source"] == "detected"]
    assert "pt" in set(detected["language"])

    monkeypatch.setenv("CLAIMS_DETECT_LANGUAGES", '["en"]')
    code, output, out = score_command(trained_checkpoint, tmp_path / "english")
    assert code == 0, output
    english = read(out)
    detected = english[english["language_source"] == "detected"]
    assert set(detected["language"]) <= {"en", "und"}
    given = english[english["language_source"] == "given"]
    assert list(given["language"]) == ["pt-BR", "en", "pt-PT"]  # a given tag is kept


def test_the_score_command_refuses_a_language_it_cannot_detect_before_scoring(
    trained_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAIMS_DETECT_LANGUAGES", '["en", "xx"]')
    code, output, out = score_command(trained_checkpoint, tmp_path)
    assert code == 2 and "CLAIMS_DETECT_LANGUAGES" in output and "xx" in output
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.usefixtures("champion")
def test_a_batch_job_reads_languages_as_the_service_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAIMS_DETECT_LANGUAGES", raising=False)
    source = backlog(tmp_path, rows=8)
    # given in code, not by the environment: the job's process must still read them
    with TestClient(create_app(ServiceSettings(detect_languages=["en"]))) as client:
        upload = {"file": ("backlog.csv", source.read_bytes(), "text/csv")}
        response = client.post("/v1/batch-jobs", files=upload)
        assert response.status_code == 202, response.text
        job = finished(client, response.json()["job_id"])
        assert job["state"] == "succeeded", job
        assert (job["result"]["scored"], job["result"]["rejected"]) == (6, 2)
        results = client.get(f"/v1/batch-jobs/{job['job_id']}/results")
        rejects = client.get(f"/v1/batch-jobs/{job['job_id']}/rejects")
    scores = pd.read_csv(io.BytesIO(results.content), dtype=str, keep_default_na=False)
    assert list(scores["language"][:3]) == ["pt-BR", "en", "pt-PT"]
    assert set(scores["language_source"]) == {"given", "detected"}
    assert set(scores["language"][3:]) <= {"en", "und"}
    reasons = pd.read_csv(io.BytesIO(rejects.content))["reason"]
    assert all(reason.startswith("language: ") for reason in reasons)

"""The `claims` command as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from claims.cli.main import app
from claims.model.checkpoint import MANIFEST
from serving.cli import register as register_serving
from tests.helpers import renamed_checkpoint
from training.cli import register as register_training

register_training(app)
register_serving(app)
runner = CliRunner()


def test_generate_writes_the_same_file_for_the_same_seed(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        result = runner.invoke(
            app, ["generate", "--n", "50", "--seed", "3", "--out", str(tmp_path / name)]
        )
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_generate_writes_other_formats(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"claims{suffix}"
    assert runner.invoke(app, ["generate", "--n", "20", "--out", str(out)]).exit_code == 0
    frame = pd.read_parquet(out) if suffix == ".parquet" else pd.read_json(out, lines=True)
    assert len(frame) == 20


@pytest.mark.slow
def test_train_writes_a_checkpoint_and_prints_its_metrics(tmp_path: Path, claims_csv: Path) -> None:
    out = tmp_path / "m"
    result = runner.invoke(
        app,
        ["train", "--data", str(claims_csv), "--out", str(out), "--strategy", "head",
         "--max-steps", "2", "--seed", "5"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "trained sp-" in result.output and "test split" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["strategy"] == "head"
    assert json.loads((out / "config.json").read_text())["training"]["seed"] == 5


def test_train_stops_on_a_bad_config_with_the_key(tmp_path: Path, claims_csv: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[tasks]]\nname = "severity"\ncolumn = "severity"\nkind = "ordinal"\n')
    result = runner.invoke(
        app,
        ["train", "--data", str(claims_csv), "--config", str(config), "--out", str(tmp_path / "m")],
    )
    assert result.exit_code == 2
    assert "tasks.0.kind" in result.output


def test_train_stops_on_a_bad_row_naming_it(tmp_path: Path, claims_frame: pd.DataFrame) -> None:
    frame = claims_frame.copy()
    frame.loc[7, "initial_estimate"] = -10
    data = tmp_path / "claims.csv"
    frame.to_csv(data, index=False)
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "row 8" in result.output and "initial_estimate" in result.output
    assert not (tmp_path / "m").exists()


def _evaluate(checkpoint: Path, data: Path, out: Path, *options: str) -> Result:
    arguments = ["evaluate", "--model", str(checkpoint), "--data", str(data), "--out", str(out)]
    return runner.invoke(app, [*arguments, *options])


@pytest.mark.slow
def test_evaluate_compares_the_specialist_with_every_baseline_and_says_how_sure_it_is(
    trained_checkpoint: Path, claims_csv: Path, tmp_path: Path
) -> None:
    result = _evaluate(trained_checkpoint, claims_csv, tmp_path)
    assert result.exit_code == 0, result.output
    report = json.loads(next(tmp_path.glob("evaluation-*.json")).read_text())
    assert set(report["systems"]) == {
        "specialist", "base_zero_shot", "base_retrieval",
        "tfidf_logreg", "gbm_structured", "gbm_stacked",
        "specialist.tuned", "specialist.text", "specialist.boosted", "specialist.linear",
    }  # fmt: skip
    assert report["primary_metrics"] == {
        "claim_type": "macro_f1", "severity": "macro_f1", "siu_referral": "auc"
    }  # fmt: skip
    for name, system in report["systems"].items():
        assert 0 <= system["metrics"]["siu_referral"]["auc"] <= 1
        assert 0 <= system["metrics"]["severity"]["ece"] <= 1
        for task, metric in report["primary_metrics"].items():
            interval = system["intervals"][task]
            assert interval["low"] <= system["metrics"][task][metric] <= interval["high"]
            assert interval["high"] - interval["low"] > 0.01  # 96 held-out claims: wide
        assert set(system["specialist_lead"]) == (
            set() if name == "specialist" else set(report["primary_metrics"])
        )
    markdown = next(tmp_path.glob("evaluation-*.md")).read_text()
    assert "| specialist |" in markdown and "| tfidf_logreg |" in markdown
    assert "1,000 bootstrap resamples" in markdown


@pytest.mark.slow
def test_evaluate_scores_another_checkpoint_on_the_same_claims(
    trained_checkpoint: Path, claims_csv: Path, tmp_path: Path
) -> None:
    result = _evaluate(
        trained_checkpoint, claims_csv, tmp_path, "--against", str(trained_checkpoint)
    )
    assert result.exit_code == 0, result.output
    report = json.loads(next(tmp_path.glob("evaluation-*.json")).read_text())
    itself = report["systems"][report["model_version"]]
    assert itself["metrics"] == report["systems"]["specialist"]["metrics"]
    # the same predictions on the same resamples: no lead at all, not just an overlap
    for lead in itself["specialist_lead"].values():
        assert lead == {"low": 0.0, "high": 0.0}


def test_evaluate_refuses_a_checkpoint_trained_on_another_file(
    trained_checkpoint: Path, claims_csv: Path, tmp_path: Path
) -> None:
    other = renamed_checkpoint(trained_checkpoint, tmp_path / "other-model")
    manifest = json.loads((other / MANIFEST).read_text())
    manifest["training_data"]["sha256"] = "0" * 64  # what the manifest of another file's model says
    (other / MANIFEST).write_text(json.dumps(manifest))
    result = _evaluate(
        trained_checkpoint, claims_csv, tmp_path / "reports", "--against", str(other)
    )
    assert result.exit_code == 2
    assert "trained on another file" in result.output

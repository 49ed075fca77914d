"""The Ray engine gives the local engine's predictions for the same file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from claims.data.synthetic import generate_claims
from claims.data.tables import write_table
from claims.domain.language import LanguageDetector
from serving.batch.scoring import BacklogScorer, load_scoring_model

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")


@pytest.fixture(scope="module")
def local_ray() -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_both_engines_score_the_same_file_the_same_way(
    trained_checkpoint: Path, tmp_path: Path, local_ray: None
) -> None:
    from serving.batch.ray_scoring import score_with_ray

    frame = generate_claims(150, seed=31, language="mixed")
    frame = frame.drop(columns=["claim_type", "severity", "siu_referral"])
    frame = frame.astype({"prior_claims": object})
    frame.loc[10, "prior_claims"] = -1  # rejected by both
    frame["language"] = None
    frame.loc[[0, 60], "language"] = ["pt_br", "english"]  # given; not a tag, rejected by both
    source = write_table(frame, tmp_path / "backlog.csv")

    languages = LanguageDetector(["en", "pt"])
    loaded = load_scoring_model(trained_checkpoint)
    local = BacklogScorer(loaded.predictor, loaded.config, chunk_rows=64, languages=languages)
    local_summary = local.score(source, tmp_path / "local.parquet")
    ray_summary = score_with_ray(
        trained_checkpoint,
        source,
        tmp_path / "ray",
        actors=1,
        batch_rows=50,
        languages=languages,
    )
    assert (
        (ray_summary.scored, ray_summary.rejected)
        == (
            local_summary.scored,
            local_summary.rejected,
        )
        == (148, 2)
    )

    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=["row"]).sort_values("claim_id").reset_index(drop=True)

    ours = ordered(pd.read_parquet(tmp_path / "local.parquet"))
    theirs = ordered(pd.read_parquet(tmp_path / "ray"))
    pd.testing.assert_frame_equal(ours, theirs[ours.columns], check_exact=False, atol=1e-5)
    pairs = zip(theirs["language"], theirs["language_source"], strict=True)
    read = dict(zip(theirs["claim_id"], pairs, strict=True))
    assert read[frame.loc[0, "claim_id"]] == ("pt-BR", "given")
    assert {tag for tag, source in read.values() if source == "detected"} >= {"en", "pt"}
    rejected = pd.read_parquet(tmp_path / "ray.rejects").sort_values("claim_id")
    assert list(rejected["claim_id"]) == sorted(frame.loc[[10, 60], "claim_id"])
    reasons = dict(zip(rejected["claim_id"], rejected["reason"], strict=True))
    assert "prior_claims" in reasons[frame.loc[10, "claim_id"]]
    assert reasons[frame.loc[60, "claim_id"]].startswith("language: ")

"""The Ray engine gives the local engine's predictions for the same file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from claims.data.synthetic import generate_claims
from claims.data.tables import write_table
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

    frame = generate_claims(150, seed=31).drop(columns=["claim_type", "severity", "siu_referral"])
    frame = frame.astype({"prior_claims": object})
    frame.loc[10, "prior_claims"] = -1  # rejected by both
    source = write_table(frame, tmp_path / "backlog.csv")

    loaded = load_scoring_model(trained_checkpoint)
    local = BacklogScorer(loaded.predictor, loaded.config, chunk_rows=64)
    local_summary = local.score(source, tmp_path / "local.parquet")
    ray_summary = score_with_ray(
        trained_checkpoint, source, tmp_path / "ray", actors=1, batch_rows=50
    )
    assert (
        (ray_summary.scored, ray_summary.rejected)
        == (
            local_summary.scored,
            local_summary.rejected,
        )
        == (149, 1)
    )

    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=["row"]).sort_values("claim_id").reset_index(drop=True)

    ours = ordered(pd.read_parquet(tmp_path / "local.parquet"))
    theirs = ordered(pd.read_parquet(tmp_path / "ray"))
    pd.testing.assert_frame_equal(ours, theirs[ours.columns], check_exact=False, atol=1e-5)
    rejected = pd.read_parquet(tmp_path / "ray.rejects")
    assert list(rejected["claim_id"]) == [frame.loc[10, "claim_id"]]
    assert "prior_claims" in rejected["reason"][0]

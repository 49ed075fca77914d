"""A narrative-only export (no numeric or categorical fields) trains, serves and evaluates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from claims.data.dataset import load_claims
from claims.model.checkpoint import load_checkpoint
from schemas.config import Strategy
from tests.helpers import quick_config
from training.evaluate import MEMBER_PREFIX, evaluate
from training.trainer import SpecialistTrainer


@pytest.mark.slow
def test_a_narrative_only_config_trains_and_every_system_is_evaluated(
    claims_csv: Path, tmp_path: Path
) -> None:
    config = quick_config(strategy=Strategy.head, max_steps=2)
    config.input.numeric, config.input.categorical = [], []
    out = tmp_path / "narrative-only"
    SpecialistTrainer(config, show_progress=False).fit(claims_csv).save(out)

    loaded = load_checkpoint(out)
    claims = load_claims(claims_csv, config).claims[:8]
    for task, values in loaded.predictor.predict_proba(claims).items():
        np.testing.assert_allclose(values.sum(axis=1), 1.0, err_msg=task)

    report = evaluate(out, claims_csv)
    # no structured field to boost on: that baseline is left out, not crashed on
    assert "gbm_structured" not in report.systems
    members = {f"{MEMBER_PREFIX}{m}" for m in ("tuned", "text", "boosted", "linear")}
    assert {"specialist", "tfidf_logreg", "gbm_stacked"} | members <= set(report.systems)

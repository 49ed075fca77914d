"""Shared fixtures: small real data and one really fine-tuned checkpoint per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from claims.config import load_config
from claims.tables import write_table
from schemas.config import SpecialistConfig

TRAINING_ROWS = 480


def quick_config(**training: object) -> SpecialistConfig:
    """The default config with a training budget fit for a test on 2 cores."""
    config = load_config()
    settings = {"epochs": 1, "max_steps": 6, "batch_size": 16, "max_length": 48, **training}
    config.training = config.training.model_copy(update=settings)
    return config


@pytest.fixture(scope="session")
def claims_frame() -> pd.DataFrame:
    from claims.synthetic import generate_claims

    return generate_claims(TRAINING_ROWS, seed=11)


@pytest.fixture(scope="session")
def claims_csv(claims_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_table(claims_frame, tmp_path_factory.mktemp("data") / "claims.csv")


@pytest.fixture(scope="session")
def trained_checkpoint(claims_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA specialist really fine-tuned for a few steps on the CPU."""
    from training.trainer import SpecialistTrainer

    out = tmp_path_factory.mktemp("runs") / "specialist"
    SpecialistTrainer(quick_config(), show_progress=False).fit(claims_csv, out)
    return out


@pytest.fixture
def checkpoint_copy(trained_checkpoint: Path, tmp_path: Path) -> Path:
    """A copy a test may damage."""
    return Path(shutil.copytree(trained_checkpoint, tmp_path / "specialist"))

"""Shared fixtures: small real data and really fine-tuned checkpoints, each once per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from claims.data.tables import write_table
from claims.store import Store
from claims.store.data_settings import DataSettings
from claims.store.registry import Registry
from schemas.registry import Lineage
from tests.helpers import TRAINING_ROWS, claim_type_config, empty_database_url, quick_config

# Fixtures that fine-tune a model: every test that uses one, directly or through another
# fixture, is slow, so `make test-fast` (pytest -m "not slow") leaves it out.
FINE_TUNING_FIXTURES = {"trained_checkpoint", "champion_checkpoint"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if FINE_TUNING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """For module- and session-wide services, which start before any per-test fixture."""
    folder = tmp_path_factory.mktemp("claims-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLAIMS_DATA_DIR", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test keeps its store and registry to itself, never in the working directory."""
    folder = tmp_path / "claims-data"
    monkeypatch.setenv("CLAIMS_DATA_DIR", str(folder))
    return folder


@pytest.fixture(scope="session", autouse=True)
def development_mode() -> Iterator[None]:
    """Tests of other concerns call the service without keys, as `claims serve --no-auth` does
    (no environment variable can turn keys off); test_auth turns keys on and checks every role
    on every route. TestClient's requests name the host `testserver`."""
    from serving.settings import ServiceSettings

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ServiceSettings.model_fields["auth"], "default", False)
        patch.setenv("CLAIMS_ALLOWED_HOSTS", '["localhost", "127.0.0.1", "::1", "testserver"]')
        ServiceSettings.model_rebuild(force=True)
        yield
    ServiceSettings.model_rebuild(force=True)


@pytest.fixture(scope="session")
def claims_frame() -> pd.DataFrame:
    from claims.data.synthetic import generate_claims

    return generate_claims(TRAINING_ROWS, seed=11)


@pytest.fixture(scope="session")
def claims_csv(claims_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_table(claims_frame, tmp_path_factory.mktemp("data") / "claims.csv")


@pytest.fixture(scope="session")
def trained_checkpoint(claims_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A specialist (the default recipe) really fine-tuned for a few steps on the CPU."""
    from training.trainer import SpecialistTrainer

    out = tmp_path_factory.mktemp("runs") / "specialist"
    SpecialistTrainer(quick_config(), show_progress=False).fit(claims_csv).save(out)
    return out


@pytest.fixture(scope="session")
def champion_checkpoint(
    claims_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Lineage]:
    """A head-only claim-type specialist and its lineage: the champion that retraining tests
    (local and on Ray) try to beat."""
    from training.trainer import SpecialistTrainer

    root = tmp_path_factory.mktemp("champion")
    checkpoint = root / "checkpoint"
    manifest = (
        SpecialistTrainer(claim_type_config(), show_progress=False).fit(claims_csv).save(checkpoint)
    )
    lineage = Lineage(
        origin="registered",
        training_data_file=claims_csv.name,
        training_data_sha256=manifest.training_data.sha256,
        training_rows=manifest.training_data.rows,
    )
    return checkpoint, lineage


@pytest.fixture
def champion_registry(champion_checkpoint: tuple[Path, Lineage], data_dir: Path) -> Registry:
    """The data directory's registry, with that specialist as its champion."""
    registry = Registry.from_settings(DataSettings())
    registry.promote(registry.register(*champion_checkpoint).version, "first")
    return registry


@pytest.fixture
def checkpoint_copy(trained_checkpoint: Path, tmp_path: Path) -> Path:
    """A copy a test may damage."""
    return Path(shutil.copytree(trained_checkpoint, tmp_path / "specialist"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database, SQLite and PostgreSQL (skipped when no server is set);
    the SQLite file's folder does not exist yet."""
    with empty_database_url(request.param, tmp_path / "data" / "claims.db") as url:
        yield url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store(database_url)
    yield opened
    opened.close()

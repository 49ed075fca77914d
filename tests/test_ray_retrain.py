"""`claims retrain --engine ray`: the retrain runs as a task on a Ray cluster (a local one here,
started by the test) and reports into the same job row a local retrain does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from claims.cli.main import app
from claims.store import Store
from claims.store.data_settings import DataSettings
from claims.store.registry import Registry
from schemas.jobs import JobState

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_a_retrain_on_ray_registers_its_challenger_and_reports_into_the_job(
    champion_registry: Registry,
    claims_csv: Path,
    local_ray: None,
) -> None:
    champion = champion_registry.champion()
    store = Store.from_settings(DataSettings())
    job = store.create_job("retrain", message="queued")
    result = CliRunner().invoke(
        app,
        ["retrain", "--data", str(claims_csv), "--job", job.job_id, "--engine", "ray"],
    )
    assert result.exit_code == 0, result.output
    done = store.job(job.job_id)
    assert done is not None and done.state == JobState.succeeded and done.progress == 1.0
    assert done.result["engine"] == "ray" and done.result["gpus"] == 0  # no GPU here
    assert done.result["ray_node"] in {node["NodeID"] for node in ray.nodes()}
    challenger = done.result["challenger_version"]
    assert challenger != champion
    assert challenger in {version.version for version in champion_registry.versions()}
    store.close()

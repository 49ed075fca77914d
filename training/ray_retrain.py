"""Retraining on a Ray cluster (`claims retrain --engine ray`): heavy work leaves the replica.

The whole retrain runs as one Ray task, on a node with a GPU when the cluster has one. The task
opens the store and the registry itself, with the settings of the process that submitted it
(the database URL and the data path every node mounts), and writes its progress into the job
row as a local retrain does; the submitting process only waits for the outcome. Ray is the
optional `ray` extra; RAY_ADDRESS names the cluster (none: a local one is started).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claims.store import Store
from claims.store.data_settings import DataSettings
from claims.store.job_progress import JobReport
from claims.store.registry import Registry
from training.retrain import RetrainOutcome, retrain


@dataclass
class RayRetrainOutcome:
    outcome: RetrainOutcome
    node_id: str  # the Ray node that trained
    gpus: int  # the GPUs the task asked for


def retrain_on_ray(
    data: Path, job_id: str, owner: str, settings: DataSettings
) -> RayRetrainOutcome:
    """Runs the retrain of `data` as a Ray task reporting to job `job_id`, as long as `owner`
    (the submitting process, which renews it) holds the job's lease; raises what it raised."""
    import ray

    ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, log_to_driver=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    task = ray.remote(num_gpus=gpus, max_retries=0)(_retrain_task)
    outcome, node_id = ray.get(
        task.remote(str(Path(data).resolve()), job_id, owner, settings.model_dump(mode="json"))
    )
    return RayRetrainOutcome(outcome=outcome, node_id=node_id, gpus=gpus)


def _retrain_task(
    data: str, job_id: str, owner: str, settings: dict[str, Any]
) -> tuple[RetrainOutcome, str]:
    """On a Ray worker: the retrain, with the submitter's store and registry."""
    import ray

    known = DataSettings.model_validate(settings)
    store = Store.from_settings(known)
    try:
        report = JobReport(store, job_id, owner)
        outcome = retrain(
            data, Registry.from_settings(known, store), store, progress=report.progress
        )
    finally:
        store.close()
    return outcome, ray.get_runtime_context().get_node_id()

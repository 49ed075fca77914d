"""Retraining as a background job: start it, then follow its progress."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from schemas.jobs import JobStatus
from serving.auth import Admin
from serving.batch.jobs import RetrainRunning, RetrainUnavailable
from serving.dependencies import Launcher
from serving.responses import SECURED, documented

router = APIRouter(
    prefix="/v1/retrain",
    tags=["retraining"],
    dependencies=[Admin],
    responses=SECURED | documented(404, 409),
)


@router.post(
    "",
    response_model=JobStatus,
    status_code=status.HTTP_202_ACCEPTED,
)
def start_retraining(launcher: Launcher) -> JobStatus:
    """History plus confirmed feedback trains a challenger; the gate decides its promotion."""
    try:
        return launcher.start_retraining()
    except (RetrainRunning, RetrainUnavailable) as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from error


@router.get("/{job_id}", response_model=JobStatus)
def retraining_status(job_id: str, launcher: Launcher) -> JobStatus:
    job = launcher.status(job_id)
    if job is None or job.kind != "retrain":
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no retrain job {job_id!r}")
    return job

"""Backlog files scored in the background: upload, follow, download."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi import APIRouter, HTTPException, UploadFile, status
from fastapi.responses import FileResponse

from claims.tables import TableFormatError, table_format
from schemas.jobs import JobState, JobStatus
from serving.auth import Triage
from serving.dependencies import Launcher, Models, StoreDep
from serving.jobs import SCORE
from serving.responses import SECURED, documented

router = APIRouter(
    prefix="/v1/batch-jobs",
    tags=["batch"],
    dependencies=[Triage],
    responses=SECURED | documented(404, 409, 413),
)
UPLOAD_CHUNK_BYTES = 1 << 20


@router.post("", response_model=JobStatus, status_code=status.HTTP_202_ACCEPTED)
def start_batch_job(
    file: UploadFile, models: Models, store: StoreDep, launcher: Launcher
) -> JobStatus:
    """Upload a CSV, JSONL (gzip too) or Parquet file of claims; the output has its format."""
    name = Path(file.filename or "").name
    try:
        kind = table_format(Path(name))
    except TableFormatError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[{"loc": ["body", "file"], "msg": str(error), "type": "value_error"}],
        ) from error
    serving = models.serving
    if serving.tuned is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"no tuned model to score with: {serving.fallback_reason}",
        )
    job = store.create_job(SCORE, message=f"uploading {name}")
    folder = launcher.batch_folder(job.job_id)
    folder.mkdir(parents=True)
    suffix = name[name.lower().rindex(f".{kind}") :]
    source, out = folder / f"input{suffix}", folder / f"output{suffix}"
    with open(source, "wb") as handle:  # streamed to disk: never the whole file in memory
        shutil.copyfileobj(file.file, handle, UPLOAD_CHUNK_BYTES)
    store.update_job(job.job_id, message=f"queued: {name}, model {serving.registry_version}")
    launcher.start_scoring(job.job_id, source, out, Path(serving.checkpoint_path))
    return store.job(job.job_id)


def _job(job_id: str, launcher: Launcher) -> JobStatus:
    job = launcher.status(job_id)
    if job is None or job.kind != SCORE:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no batch job {job_id!r}")
    return job


@router.get("/{job_id}", response_model=JobStatus)
def batch_job_status(job_id: str, launcher: Launcher) -> JobStatus:
    return _job(job_id, launcher)


def _download(job_id: str, launcher: Launcher, rejects: bool) -> FileResponse:
    job = _job(job_id, launcher)
    if job.state is not JobState.succeeded:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"batch job {job_id} is {job.state}, not finished"
        )
    path = Path(job.result["rejects" if rejects else "output"])
    return FileResponse(path, filename=f"{job_id}-{path.name}")


@router.get("/{job_id}/results", response_class=FileResponse)
def batch_job_results(job_id: str, launcher: Launcher) -> FileResponse:
    """The scored rows, streamed, once the job has succeeded."""
    return _download(job_id, launcher, rejects=False)


@router.get("/{job_id}/rejects", response_class=FileResponse)
def batch_job_rejects(job_id: str, launcher: Launcher) -> FileResponse:
    """The rows that could not be scored, each with its reason."""
    return _download(job_id, launcher, rejects=True)

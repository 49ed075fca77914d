"""Backlog files scored in the background: upload, follow, download.

A job belongs to the key that created it, as the store records: only that key, or an admin's,
reads its status and its files (another key gets 404, as for a job that does not exist). The
caps on jobs at once (`CLAIMS_BATCH_JOBS_PER_KEY`, `CLAIMS_BATCH_JOBS_TOTAL`) are checked before
the upload is read. A complete upload is queued in the store; the first replica with a free
slot (this one, if it has one) starts it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from claims.data.tables import TableFormatError, table_format
from schemas.auth import ApiKeyInfo, Role
from schemas.jobs import JobState, JobStatus
from serving.auth import Triage, caller
from serving.batch.jobs import SCORE, JobLauncher, TooManyJobs
from serving.dependencies import Launcher, Models, StoreDep
from serving.responses import SECURED, documented, invalid_field

router = APIRouter(
    prefix="/v1/batch-jobs",
    tags=["batch"],
    dependencies=[Triage],
    responses=SECURED | documented(404, 409, 413),
)
UPLOAD_CHUNK_BYTES = 1 << 20
RETRY_AFTER_SECONDS = 30
# The body is read by the route itself, after the caps are checked, so FastAPI is told its form
# here rather than by an `UploadFile` parameter (which it would read before anything else).
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "Claims: .csv, .jsonl (gzip too) or .parquet.",
                        }
                    },
                }
            }
        },
    }
}


def _too_many(error: TooManyJobs) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail=str(error),
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@router.post(
    "",
    response_model=JobStatus,
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=UPLOAD_BODY,
    responses=documented(422),
)
async def start_batch_job(
    request: Request,
    models: Models,
    store: StoreDep,
    launcher: Launcher,
    explain: bool = Query(
        False,
        description="Each row's top factors and the decision's reasons as columns too "
        "(`claims score --explain`): slower, as each claim is answered once more per phrase.",
    ),
) -> JobStatus:
    """Upload a CSV, JSONL (gzip too) or Parquet file of claims as the form field `file`; the
    output has its format. 429 past the caps on jobs at once, before the upload is read."""
    serving = models.serving
    if serving.tuned is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"no tuned model to score with: {serving.fallback_reason}",
        )
    key = caller(request)
    owner = key.key_id if key is not None else None
    try:
        await run_in_threadpool(launcher.check_room, owner)
    except TooManyJobs as error:
        raise _too_many(error) from error
    try:
        form = await request.form(max_files=1, max_fields=1)
    except StarletteHTTPException as error:  # its 400 for a body that is not the form
        raise invalid_field(["file"], str(error.detail)) from error
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise invalid_field(["file"], "a file is required, as the form field `file`")
        name = Path(file.filename or "").name
        try:
            kind = table_format(Path(name))
        except TableFormatError as error:
            raise invalid_field(["file"], str(error)) from error
        try:
            job = await run_in_threadpool(launcher.create_scoring, owner, f"uploading {name}")
        except TooManyJobs as error:
            raise _too_many(error) from error
        folder = launcher.batch_folder(job.job_id)
        suffix = name[name.lower().rindex(f".{kind}") :]
        source, out = folder / f"input{suffix}", folder / f"output{suffix}"
        try:
            await run_in_threadpool(_save, file, source)
        except Exception:  # a full disk: the job must not hold a slot for ever
            await run_in_threadpool(
                store.update_job, job.job_id, state=JobState.failed, error="the upload was lost"
            )
            raise
    finally:
        await form.close()
    message = f"queued: {name}, model {serving.registry_version}"
    checkpoint = Path(serving.checkpoint_path) if serving.checkpoint_path else None
    await run_in_threadpool(
        launcher.queue_scoring, job.job_id, message, source, out, checkpoint, explain
    )
    queued = await run_in_threadpool(store.job, job.job_id)
    if queued is None:
        raise RuntimeError(f"batch job {job.job_id} vanished from the store once queued")
    return queued


def _save(file: UploadFile, path: Path) -> None:
    """Streamed to disk: never the whole file in memory."""
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:
        shutil.copyfileobj(file.file, handle, UPLOAD_CHUNK_BYTES)


def readable(job_id: str, key: ApiKeyInfo | None, launcher: JobLauncher) -> JobStatus:
    """The scoring job, if `key` may read it (its owner's, or an admin's; anyone's without
    keys); else 404, so that another key cannot even learn that it exists."""
    job = launcher.status(job_id)
    if (
        job is None
        or job.kind != SCORE
        or (key is not None and not _may_read(key, job_id, launcher))
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no batch job {job_id!r}")
    return job


def _may_read(key: ApiKeyInfo, job_id: str, launcher: JobLauncher) -> bool:
    return key.role.allows(Role.admin) or launcher.owner(job_id) == key.key_id


@router.get("/{job_id}", response_model=JobStatus)
def batch_job_status(job_id: str, request: Request, launcher: Launcher) -> JobStatus:
    return readable(job_id, caller(request), launcher)


def _download(job_id: str, request: Request, launcher: Launcher, rejects: bool) -> FileResponse:
    job = readable(job_id, caller(request), launcher)
    if job.state is not JobState.succeeded:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"batch job {job_id} is {job.state}, not finished"
        )
    if job.result is None:
        raise RuntimeError(f"batch job {job_id} succeeded without recording its files")
    path = Path(job.result["rejects" if rejects else "output"])
    if not path.is_file():
        raise HTTPException(
            status.HTTP_410_GONE,
            detail=f"batch job {job_id}'s files were deleted: they are kept for "
            f"{launcher.settings.batch_retention_days:g} days",
        )
    return FileResponse(path, filename=f"{job_id}-{path.name}")


@router.get("/{job_id}/results", response_class=FileResponse, responses=documented(410))
def batch_job_results(job_id: str, request: Request, launcher: Launcher) -> FileResponse:
    """The scored rows, streamed, once the job has succeeded."""
    return _download(job_id, request, launcher, rejects=False)


@router.get("/{job_id}/rejects", response_class=FileResponse, responses=documented(410))
def batch_job_rejects(job_id: str, request: Request, launcher: Launcher) -> FileResponse:
    """The rows that could not be scored, each with its reason."""
    return _download(job_id, request, launcher, rejects=True)

"""A command run as a background job reports its progress and outcome to the store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from claims.store import Store
from schemas.jobs import JobState


class JobReport:
    """Progress written at most once a second: the store is shared with the service."""

    def __init__(self, store: Store, job_id: str, interval: float = 1.0) -> None:
        self.store, self.job_id, self.interval = store, job_id, interval
        self._last = 0.0

    def progress(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval or fraction >= 1.0:
            self._last = now
            self.store.update_job(self.job_id, progress=min(fraction, 1.0), message=message)

    def succeeded(self, message: str, result: dict[str, Any]) -> None:
        self.store.update_job(
            self.job_id, state=JobState.succeeded, progress=1.0, message=message, result=result
        )


@contextmanager
def reporting(store: Store, kind: str, job_id: str | None) -> Iterator[JobReport]:
    """Marks the job running, and failed with the reason if the body raises; `job_id` None
    creates a job, so runs from the command line are listed too."""
    job_id = job_id or store.create_job(kind).job_id
    store.update_job(job_id, state=JobState.running, message="starting")
    try:
        yield JobReport(store, job_id)
    except BaseException as error:
        reason = (
            "interrupted" if isinstance(error, KeyboardInterrupt) else str(error.__cause__ or error)
        )
        store.update_job(job_id, state=JobState.failed, error=reason)
        raise

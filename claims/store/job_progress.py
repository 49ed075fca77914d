"""A command run as a background job reports its progress and outcome to the store, and holds
the job's lease while it works: if the process dies, the lease lapses and another replica takes
the job over."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from claims.store import LeaseLost, Store
from claims.store.data_settings import DataSettings
from claims.store.leases import LeaseKeeper, process_owner
from schemas.jobs import JobState

# Set by the service for the command it starts: the replica that holds the job's lease until
# the command takes it over.
HANDED_BY = "CLAIMS_JOB_HANDED_BY"
# The exit status of a command that lost its job's lease to another process.
LEASE_LOST_EXIT = 75


class JobReport:
    """Progress written at most once a second: the store is shared with the service. Every
    write is refused (LeaseLost) once another process holds the job."""

    def __init__(self, store: Store, job_id: str, owner: str, interval: float = 1.0) -> None:
        self.store, self.job_id, self.owner, self.interval = store, job_id, owner, interval
        self._last = 0.0

    def progress(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval or fraction >= 1.0:
            self._last = now
            self.store.update_job(
                self.job_id, progress=min(fraction, 1.0), message=message, owner=self.owner
            )

    def succeeded(self, message: str, result: dict[str, Any]) -> None:
        self.store.update_job(
            self.job_id,
            state=JobState.succeeded,
            progress=1.0,
            message=message,
            result=result,
            owner=self.owner,
        )


def stop_at_once(job_id: str) -> None:
    """Another process has the job, or will once this one's lease lapses: not a byte more of
    its work is written from here."""
    print(f"the lease of job {job_id} was lost: stopping", file=sys.stderr, flush=True)
    os._exit(LEASE_LOST_EXIT)


@contextmanager
def reporting(store: Store, kind: str, job_id: str | None) -> Iterator[JobReport]:
    """Takes the job's lease and renews it until the body ends; marks the job running, and
    failed with the reason if the body raises. `job_id` None creates a job, so runs from the
    command line are listed (and leased) too. LeaseLost if another process holds the job."""
    settings = DataSettings()
    owner, seconds = process_owner(), settings.job_lease_seconds
    if job_id is None:
        job_id = store.create_job(kind, lease=(owner, seconds)).job_id
    elif not store.take_lease(job_id, owner, seconds, handed_by=os.environ.get(HANDED_BY)):
        held = store.lease(job_id)
        raise LeaseLost(
            f"job {job_id} has ended or is held by {held.owner if held else 'another process'}"
        )
    keeper = LeaseKeeper(store, owner, seconds, settings.job_lease_renew_seconds, stop_at_once)
    keeper.hold(job_id)
    try:
        store.update_job(job_id, state=JobState.running, message="starting", owner=owner)
        yield JobReport(store, job_id, owner)
    except BaseException as error:
        reason = (
            "interrupted" if isinstance(error, KeyboardInterrupt) else str(error.__cause__ or error)
        )
        with suppress(LeaseLost):  # then the job is another's to report
            store.update_job(job_id, state=JobState.failed, error=reason, owner=owner)
        raise
    finally:
        keeper.close()

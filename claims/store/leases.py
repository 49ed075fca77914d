"""Leases on background jobs, and the queue of jobs ready to start, so that a job belongs to the
cluster rather than to a process.

A job whose work can begin (its command is known) and that no one holds is queued: the first
replica with a free slot claims it (`claim_next`) and starts its process. The process doing a
job's work holds the job's lease and renews it while it works. A lease not renewed lapses, and
then any replica may claim the job (`claim_lapsed`), to fail it or put it back on the queue.
Claims are atomic: a conditional UPDATE, or SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL,
inside the store's write transactions (on SQLite they hold the write lock from their first
statement). On PostgreSQL the times are the database's clock, so replicas whose clocks disagree
still agree on when a lease lapses.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from claims.store.orm import Job
from schemas.jobs import JobState

log = logging.getLogger("claims.store.leases")

ACTIVE_STATES = (JobState.queued.value, JobState.running.value)


@dataclass(frozen=True)
class Claimed:
    """A queued job a replica has claimed to start: it holds the lease, the process it starts
    takes it over."""

    job_id: str
    kind: str
    command: list[str]


class LeaseLost(RuntimeError):
    """Another process holds the job's lease: this one must do no more of its work."""


@dataclass(frozen=True)
class Lease:
    owner: str
    expires_at: datetime
    takeovers: int  # times a replica claimed the job after its lease lapsed


def process_owner() -> str:
    """This process as a lease holder: its host and pid, for people reading the store, and a
    random part, so that a pid reused on the host, or the same host name elsewhere, never
    passes for it. A forked child is another holder."""
    return _owner(os.getpid())


@cache
def _owner(pid: int) -> str:
    return f"{socket.gethostname()[:80]}:{pid}:{secrets.token_hex(6)}"


def database_now(session: Session) -> datetime:
    """Now, by the database's clock where there is one to share (PostgreSQL); SQLite is a file
    on one machine, whose clock every process on it shares."""
    if session.get_bind().dialect.name == "postgresql":
        now = session.scalar(select(func.now()))
        if now is not None:
            return now
    return datetime.now(UTC)


class JobLeases:
    """The store's lease operations (mixed into `Store`)."""

    _writing: sessionmaker[Session]
    _reading: sessionmaker[Session]

    def take_lease(
        self, job_id: str, owner: str, seconds: float, handed_by: str | None = None
    ) -> bool:
        """Takes the lease of the active job `job_id` if no one holds it, if it lapsed, or if
        `handed_by` (the process that started this one) holds it; False if another holds it
        or the job has ended."""
        with self._writing.begin() as session:
            now = database_now(session)
            free = or_(Job.lease_owner.is_(None), Job.lease_expires_at < now)
            if handed_by is not None:
                free = or_(free, Job.lease_owner == handed_by)
            taken = session.execute(
                update(Job)
                .where(Job.job_id == job_id, Job.state.in_(ACTIVE_STATES), free)
                .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=seconds)),
                execution_options={"synchronize_session": False},
            )
            return taken.rowcount == 1  # type: ignore[attr-defined]

    def claim_lapsed(
        self, owner: str, seconds: float, kinds: Collection[str] | None = None
    ) -> str | None:
        """Claims the oldest active job whose lease lapsed, or that has neither a lease nor a
        command (one from before leases), and returns its id; None if there is none. A job on
        the queue (no lease, a command) is `claim_next`'s. Replicas that look at once each get
        another job, or none: a row one of them is claiming is skipped, not waited for."""
        with self._writing.begin() as session:
            now = database_now(session)
            query = (
                select(Job)
                .where(
                    Job.state.in_(ACTIVE_STATES),
                    or_(
                        Job.lease_expires_at < now,
                        and_(Job.lease_owner.is_(None), Job.command.is_(None)),
                    ),
                )
                .order_by(Job.created_at, Job.job_id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if kinds is not None:
                query = query.where(Job.kind.in_(list(kinds)))
            row = session.scalar(query)
            if row is None:
                return None
            row.lease_owner = owner
            row.lease_expires_at = now + timedelta(seconds=seconds)
            row.takeovers += 1
            return row.job_id

    def claim_next(self, owner: str, seconds: float) -> Claimed | None:
        """Claims the oldest queued job that no one holds and whose command is known, for
        `owner` to start; None if the queue is empty. As in `claim_lapsed`, replicas that look
        at once each get another job, or none; a first start is no takeover."""
        with self._writing.begin() as session:
            now = database_now(session)
            row = session.scalar(
                select(Job)
                .where(
                    Job.state == JobState.queued.value,
                    Job.lease_owner.is_(None),
                    Job.command.is_not(None),
                )
                .order_by(Job.created_at, Job.job_id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if row is None or row.command is None:
                return None
            row.lease_owner = owner
            row.lease_expires_at = now + timedelta(seconds=seconds)
            return Claimed(row.job_id, row.kind, [str(part) for part in json.loads(row.command)])

    def enqueue(
        self, job_id: str, owner: str, message: str, command: list[str] | None = None
    ) -> None:
        """Puts the job `owner` holds on the queue, queued and held by no one, for the first
        replica with a free slot to start; `command` sets what starts it. LeaseLost if `owner`
        no longer holds it, or it has ended."""
        with self._writing.begin() as session:
            row = session.get(Job, job_id, with_for_update=True)
            if row is None or row.lease_owner != owner or row.state not in ACTIVE_STATES:
                raise LeaseLost(f"job {job_id} has ended or is held by another process")
            if command is not None:
                row.command = json.dumps(command)
            if row.command is None:
                raise ValueError(f"job {job_id} has no command to start it with")
            row.state, row.message = JobState.queued.value, message
            row.lease_owner, row.lease_expires_at = None, None
            row.updated_at = datetime.now(UTC)

    def renew_lease(self, job_id: str, owner: str, seconds: float) -> JobState | None:
        """Extends the lease `owner` holds by `seconds` from now; returns the job's state, or
        None if `owner` no longer holds it (or the job is gone)."""
        with self._writing.begin() as session:
            row = session.get(Job, job_id, with_for_update=True)
            if row is None or row.lease_owner != owner:
                return None
            row.lease_expires_at = database_now(session) + timedelta(seconds=seconds)
            return JobState(row.state)

    def lease(self, job_id: str) -> Lease | None:
        """Who holds the job's lease, until when, and how often it was taken over; None if no
        one ever has held it."""
        with self._reading() as session:
            row = session.get(Job, job_id)
            if row is None or row.lease_owner is None or row.lease_expires_at is None:
                return None
            return Lease(row.lease_owner, row.lease_expires_at, row.takeovers)


class LeaseKeeper:
    """Renews the leases one process holds, every `renew_every` seconds on a thread of its own.

    A lease is let go once its job has ended, or once `while_` (given to `hold`) turns false. A
    lease found held by another process, or not renewed before it would have lapsed (the store
    out of reach for a whole lease), is lost: `on_lost(job_id)` is called and it is let go."""

    def __init__(
        self,
        store: JobLeases,
        owner: str,
        seconds: float,
        renew_every: float,
        on_lost: Callable[[str], None],
    ) -> None:
        self.store, self.owner = store, owner
        self.seconds, self.renew_every = seconds, renew_every
        self.on_lost = on_lost
        # job id -> (monotonic time by which it must be renewed, whether to go on holding it)
        self._held: dict[str, tuple[float, Callable[[], bool] | None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, job_id: str, while_: Callable[[], bool] | None = None) -> None:
        """Keeps renewing `job_id`'s lease, which this process has just taken."""
        with self._lock:
            self._held[job_id] = (time.monotonic() + self.seconds, while_)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="claims-job-leases", daemon=True
                )
                self._thread.start()

    def release(self, job_id: str) -> None:
        with self._lock:
            self._held.pop(job_id, None)

    def held(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def close(self) -> None:
        """Stops renewing: the leases still held lapse."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.renew_every):
            self.renew()

    def renew(self) -> None:
        """One round of renewals."""
        with self._lock:
            held = list(self._held.items())
        for job_id, (deadline, while_) in held:
            if while_ is not None and not while_():
                self.release(job_id)
                continue
            started = time.monotonic()
            try:
                state = self.store.renew_lease(job_id, self.owner, self.seconds)
            except Exception:  # the store out of reach: the lease holds until its deadline
                log.warning("renewing the lease of job %s failed", job_id, exc_info=True)
                if time.monotonic() >= deadline:
                    self._lost(job_id)
                continue
            if state is None:
                self._lost(job_id)
            elif state.value not in ACTIVE_STATES:
                self.release(job_id)
            else:
                with self._lock:
                    if job_id in self._held:
                        self._held[job_id] = (started + self.seconds, while_)

    def _lost(self, job_id: str) -> None:
        self.release(job_id)
        self.on_lost(job_id)

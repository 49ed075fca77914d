"""Retraining and backlog scoring run as `claims retrain` and `claims score`, each in a process
of its own.

Neither blocks a request or takes the service down with it. A job belongs to the cluster: its
state, its owner, its command line and its lease live in the store, so any replica can report
it, check who may read it, and start it. A job whose work can begin (a retrain once asked for,
a scoring job once its upload is complete) waits on the store's queue, held by no one; each
replica runs at most `job_processes` job processes, and with a free slot claims the oldest
queued job (`start_queued`: at once on the replica that queued it, and on every replica every
renewal interval) and starts its process. The replica holds the lease until that process takes
it over and renews it while it works (claims/store/job_progress.py). When the process dies,
with its replica or alone, the lease lapses, and the first replica to look (`recover`) claims
the job: a scoring job goes back on the queue, to resume at its first unfinished chunk on the
shared data path; so does a retrain whose process never reported starting; one that did is
failed, to be asked for again. No job is judged by a process id, which on another machine
means nothing: a replica watches only the processes it started itself.

The caps on scoring jobs are counted and the job created in one transaction of the store that
replicas take one at a time, so replicas asked at once cannot each pass them. One retrain at a
time holds across replicas by the store's partial unique index; a retrain is also asked for
under a lock on a file in the data directory, so that its checks (and the recovery of a dead
one) run once on a machine.
A job's owner (the key that created a scoring job) and its command line are in the store with
the rest of the job; only its log and the pid of its process are files, beside each other.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from claims.store import ActiveJobExists, JobCapReached, JobCaps, Store, over_caps
from claims.store.files import exclusive_lock
from claims.store.job_progress import HANDED_BY
from claims.store.leases import LeaseKeeper, process_owner
from schemas.jobs import JobState, JobStatus
from serving.settings import ServiceSettings

log = logging.getLogger("claims.serving.jobs")
RETRAIN, SCORE = "retrain", "score"
# Takeovers of a batch job after its process died: a rolling restart is one; a job whose process
# dies each time (out of memory) is failed after this many rather than started for ever.
MAX_TAKEOVERS = 5
ACTIVE = (JobState.queued, JobState.running)


class RetrainUnavailable(RuntimeError):
    """The service was not told where the historical claims are."""


class RetrainRunning(RuntimeError):
    def __init__(self, job: JobStatus | None) -> None:
        super().__init__(
            f"retrain job {job.job_id} is {job.state}"
            if job
            else "another retrain was started at the same moment"
        )
        self.job = job


class TooManyJobs(RuntimeError):
    """A cap on scoring jobs at once is reached: the caller may try again once one ends."""


class JobLauncher:
    def __init__(self, settings: ServiceSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.jobs_dir = settings.data_dir.resolve() / "jobs"
        self.replica = process_owner()  # this replica, as a lease holder
        # the leases of jobs being uploaded, and of jobs whose process has not taken them over
        self.leases = LeaseKeeper(
            store,
            self.replica,
            settings.job_lease_seconds,
            settings.job_lease_renew_seconds,
            on_lost=self.leases_released,
        )
        self._processes: dict[str, subprocess.Popen[bytes]] = {}  # job id -> process started
        self._starting = threading.Lock()  # slots are counted, then filled, one caller at once

    def close(self) -> None:
        """Stops renewing: the leases of uploads in flight lapse, and other replicas fail them."""
        self.leases.close()

    def leases_released(self, job_id: str) -> None:
        """A lease this replica held is another's: most often the job's process took it."""
        log.debug("job %s is held by another process now", job_id)

    def start_retraining(self) -> JobStatus:
        data = self.settings.training_data
        if data is None:
            raise RetrainUnavailable(
                "the service has no historical claims to retrain on: set CLAIMS_TRAINING_DATA"
            )
        with self._launching():
            self.recover(kinds=(RETRAIN,))  # a retrain whose process died must not block it
            running = self.store.jobs(kind=RETRAIN, states=ACTIVE)
            if running:
                raise RetrainRunning(running[0])
            command = ["retrain", "--data", str(Path(data).resolve())]
            command += ["--engine", self.settings.retrain_engine.value]
            try:  # the lock above is this machine's; the database's index holds across replicas
                job = self.store.create_job(RETRAIN, message="queued", command=command)
            except ActiveJobExists as error:
                running = self.store.jobs(kind=RETRAIN, states=ACTIVE)
                raise RetrainRunning(running[0] if running else None) from error
        self.start_queued()  # here, if this replica has a free slot; else by another's worker
        return self.store.job(job.job_id) or job

    def check_room(self, owner: str | None) -> None:
        """Raises TooManyJobs when `owner` (a key id; None without keys) may not start another
        scoring job now; cheap, so an upload is refused before it is read. `create_scoring`
        checks again, in the store, where replicas cannot both pass."""
        active = len(self.store.jobs(kind=SCORE, states=ACTIVE))
        mine = len(self.store.jobs(kind=SCORE, states=ACTIVE, owner_key=owner or ""))
        if (reason := over_caps(SCORE, active, mine, self._caps())) is not None:
            raise TooManyJobs(reason)

    def create_scoring(self, owner: str | None, message: str) -> JobStatus:
        """A new scoring job owned by `owner`, within the caps, counted and created in one
        transaction of the store that replicas take one at a time."""
        try:
            job = self.store.create_job(
                SCORE,
                message=message,
                lease=self._lease(),
                owner_key=owner or "",
                caps=self._caps(),
            )
        except JobCapReached as error:
            raise TooManyJobs(str(error)) from error
        self.leases.hold(job.job_id)  # while the upload arrives
        return job

    def forget_old(self, now: datetime | None = None) -> tuple[int, int]:
        """Deletes what retention says is too old: the files of scoring jobs finished more than
        `batch_retention_days` ago, and predictions (their claims' text) older than
        `prediction_retention_days`. Returns (jobs whose files went, predictions deleted)."""
        now = now or datetime.now(UTC)
        settings = self.settings
        cutoff = now - timedelta(days=settings.batch_retention_days)
        emptied = 0
        for job in self.store.jobs(kind=SCORE):
            if job.state in ACTIVE or job.updated_at >= cutoff:
                continue
            folder = self.batch_folder(job.job_id)
            # (a job from before migration 0008 has its owner and command in files too)
            leftovers = [
                self.jobs_dir / f"{job.job_id}.{end}" for end in ("log", "pid", "owner", "command")
            ]
            if folder.exists() or any(path.exists() for path in leftovers):
                shutil.rmtree(folder, ignore_errors=True)
                for path in leftovers:
                    path.unlink(missing_ok=True)
                emptied += 1
        forgotten = 0
        if settings.prediction_retention_days:
            before = now - timedelta(days=settings.prediction_retention_days)
            forgotten, _ = self.store.forget_predictions(before)
        return emptied, forgotten

    def owner(self, job_id: str) -> str | None:
        """The key id that created the job; "" when keys were off; None when not recorded (a job
        from before owners were kept, or a retrain): then only an admin may read it."""
        return self.store.job_owner(job_id)

    @contextmanager
    def _launching(self) -> Iterator[None]:
        """Held while a job is checked for and started; blocks other threads and processes."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.jobs_dir / "launch.lock"):
            yield

    def batch_folder(self, job_id: str) -> Path:
        return self.settings.data_dir.resolve() / "batch" / job_id

    def queue_scoring(
        self,
        job_id: str,
        message: str,
        source: Path,
        out: Path,
        model: Path | None,
        explain: bool = False,
    ) -> None:
        """Puts `job_id`, created when its upload began, on the queue once its files are in
        `batch_folder`, and starts it here if this replica has a free slot. LeaseLost if its
        upload took so long that its lease lapsed and another replica failed it."""
        settings = self.settings
        command = ["score", str(source), "--out", str(out)]
        command += ["--workers", str(settings.scoring_workers)]
        command += ["--chunk-rows", str(settings.batch_chunk_rows)]
        command += ["--explain"] if explain else []
        command += ["--model", str(model)] if model else []
        self.leases.release(job_id)
        self.store.enqueue(job_id, self.replica, message, command)
        self.start_queued()

    def free_slots(self) -> int:
        """Job processes this replica may still start: `job_processes` less those of its own
        that are alive."""
        for job_id, process in list(self._processes.items()):
            if process.poll() is not None:
                del self._processes[job_id]
        return self.settings.job_processes - len(self._processes)

    def start_queued(self) -> list[str]:
        """Claims queued jobs, oldest first, while this replica has a free slot, and starts
        each one's process; returns the ids of those it started."""
        started = []
        with self._starting:
            while self.free_slots() > 0:
                claimed = self.store.claim_next(self.replica, self.settings.job_lease_seconds)
                if claimed is None:
                    break
                self._spawn(claimed.job_id, claimed.command)
                started.append(claimed.job_id)
        return started

    def recover(self, kinds: Collection[str] = (SCORE, RETRAIN)) -> list[tuple[str, str]]:
        """Claims, one at a time, every job whose lease lapsed: its process died, or lost the
        store for a whole lease. A scoring job the service started goes back on the queue, to
        resume at its first unfinished chunk, and so does a retrain whose process never
        reported starting, unless either has died too often; any other (a retrain that had
        started, an upload cut short, a `claims score` run by hand) is failed. Returns (job id,
        "requeued" or "failed") for each."""
        seconds = self.settings.job_lease_seconds
        outcomes = []
        while (job_id := self.store.claim_lapsed(self.replica, seconds, kinds)) is not None:
            job, lease = self.store.job(job_id), self.store.lease(job_id)
            takeovers = lease.takeovers if lease else 0
            command = self.store.job_command(job_id)
            scoring = job is not None and job.kind == SCORE
            unstarted = job is not None and job.state is JobState.queued
            resumable = command is not None and (scoring or unstarted)
            if resumable and takeovers <= MAX_TAKEOVERS:
                message = "queued again: its process stopped without reporting an end"
                self.store.enqueue(job_id, self.replica, message)
                outcomes.append((job_id, "requeued"))
                continue
            if resumable:
                error = f"its process died {takeovers} times, unheard; see {self._log(job_id)}"
            elif not scoring:
                error = (
                    "its process stopped without reporting an end and renewed its lease no "
                    f"more (killed, or its machine went down); see {self._log(job_id)}"
                )
            else:
                error = (
                    "its upload was cut short, or its process (not one the service started) "
                    "stopped without reporting an end: send it again"
                )
            self.store.update_job(job_id, state=JobState.failed, error=error, owner=self.replica)
            outcomes.append((job_id, "failed"))
        return outcomes

    def status(self, job_id: str) -> JobStatus | None:
        """The job as the store has it: one whose process died is failed or queued again by
        `recover`, on whichever replica looks first once its lease lapses."""
        return self.store.job(job_id)

    def _spawn(self, job_id: str, command: list[str]) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        settings = self.settings
        environment = {**os.environ, "CLAIMS_DATA_DIR": str(settings.data_dir.resolve())}
        if settings.database_url:
            environment["CLAIMS_DATABASE_URL"] = settings.database_url
        environment[HANDED_BY] = self.replica  # the command takes the job's lease over from us
        environment["CLAIMS_JOB_LEASE_SECONDS"] = str(settings.job_lease_seconds)
        environment["CLAIMS_JOB_LEASE_RENEW_SECONDS"] = str(settings.job_lease_renew_seconds)
        # a backlog's claims are read in the languages this service reads its own in
        environment["CLAIMS_DETECT_LANGUAGES"] = json.dumps(settings.detect_languages)
        environment["CLAIMS_LANGUAGE_MIN_CONFIDENCE"] = str(settings.language_min_confidence)
        try:
            with open(self._log(job_id), "ab") as output:
                process = subprocess.Popen(
                    [sys.executable, "-m", "claims", *command, "--job", job_id],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=environment,
                    start_new_session=True,  # not stopped by a signal to the service
                )
        except BaseException:  # its lease lapses, and a replica tries again (or fails it)
            self.leases.release(job_id)
            raise
        self._processes[job_id] = process  # a slot taken until it ends
        # renewed until the process takes it over, or dies first and lets it lapse
        self.leases.hold(job_id, while_=lambda: process.poll() is None)
        self._pid_file(job_id).write_text(str(process.pid))  # for an operator to find it

    def _caps(self) -> JobCaps:
        return JobCaps(self.settings.batch_jobs_total, self.settings.batch_jobs_per_key)

    def _lease(self) -> tuple[str, float]:
        return self.replica, self.settings.job_lease_seconds

    def _log(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.log"

    def _pid_file(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.pid"

"""Retraining and backlog scoring run as `claims retrain` and `claims score`, each in a process
of its own.

Neither blocks a request or takes the service down with it, and both carry on when the service
restarts. Their state lives in the store, so any instance of the service can report it; a
scoring job whose process died is started again and resumes at its first unscored chunk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from claims.store import Store
from schemas.jobs import JobState, JobStatus
from serving.settings import ServiceSettings

RETRAIN, SCORE = "retrain", "score"
ACTIVE = (JobState.queued, JobState.running)


class RetrainUnavailable(RuntimeError):
    """The service was not told where the historical claims are."""


class RetrainRunning(RuntimeError):
    def __init__(self, job: JobStatus) -> None:
        super().__init__(f"retrain job {job.job_id} is {job.state}")
        self.job = job


class JobLauncher:
    def __init__(self, settings: ServiceSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.jobs_dir = settings.data_dir.resolve() / "jobs"

    def start_retraining(self) -> JobStatus:
        data = self.settings.training_data
        if data is None:
            raise RetrainUnavailable(
                "the service has no historical claims to retrain on: set CLAIMS_TRAINING_DATA"
            )
        for job in self.store.jobs(kind=RETRAIN, states=ACTIVE):
            job = self.status(job.job_id) or job
            if job.state in ACTIVE:
                raise RetrainRunning(job)
        job = self.store.create_job(RETRAIN, message="queued")
        self._spawn(job.job_id, ["retrain", "--data", str(Path(data).resolve())])
        return job

    def batch_folder(self, job_id: str) -> Path:
        return self.settings.data_dir.resolve() / "batch" / job_id

    def start_scoring(self, job_id: str, source: Path, out: Path, model: Path | None) -> None:
        """`job_id` was created when the upload began; its files are in `batch_folder`."""
        workers = str(self.settings.scoring_workers)
        command = ["score", str(source), "--out", str(out), "--workers", workers]
        self._spawn(job_id, command + (["--model", str(model)] if model else []))

    def resume_scoring(self) -> list[str]:
        """Starts again every scoring job whose process is gone; returns their ids."""
        resumed = []
        for job in self.store.jobs(kind=SCORE, states=ACTIVE):
            if _alive(self._pid_file(job.job_id)):
                continue
            command = (self.jobs_dir / f"{job.job_id}.command").read_text().split("\0")
            self._spawn(job.job_id, command)
            resumed.append(job.job_id)
        return resumed

    def status(self, job_id: str) -> JobStatus | None:
        """The job as the store has it; a retrain whose process died without saying so is
        failed (a scoring job is resumed at the next start instead)."""
        job = self.store.job(job_id)
        if job is None or job.state not in ACTIVE or _alive(self._pid_file(job_id)):
            return job
        if job.kind == SCORE:
            return job
        job = self.store.job(job_id)  # it may have finished between the two reads
        if job is not None and job.state in ACTIVE:
            job = self.store.update_job(
                job_id,
                state=JobState.failed,
                error=f"the process ended without reporting; see {self._log(job_id)}",
            )
        return job

    def _spawn(self, job_id: str, command: list[str]) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        (self.jobs_dir / f"{job_id}.command").write_text("\0".join(command))
        settings = self.settings
        environment = {**os.environ, "CLAIMS_DATA_DIR": str(settings.data_dir.resolve())}
        if settings.database_url:
            environment["CLAIMS_DATABASE_URL"] = settings.database_url
        with open(self._log(job_id), "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "claims", *command, "--job", job_id],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,  # not stopped by a signal to the service
            )
        self._pid_file(job_id).write_text(str(process.pid))

    def _log(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.log"

    def _pid_file(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.pid"


def _alive(pid_file: Path) -> bool:
    if not pid_file.is_file():
        return True  # started elsewhere (the CLI): its own process reports its end
    pid = int(pid_file.read_text())
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # reaps our own child once it exits
        return finished == 0
    except ChildProcessError:  # not our child: started by an earlier run of the service
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

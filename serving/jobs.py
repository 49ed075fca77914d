"""Retraining runs as `claims retrain` in a process of its own.

Training never blocks a request or takes the service down with it, and it carries on when the
service restarts. Its state lives in the store, so any instance of the service can report it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from claims.store import Store
from schemas.jobs import JobState, JobStatus
from serving.settings import ServiceSettings

RETRAIN = "retrain"
ACTIVE = (JobState.queued, JobState.running)


class RetrainUnavailable(RuntimeError):
    """The service was not told where the historical claims are."""


class RetrainRunning(RuntimeError):
    def __init__(self, job: JobStatus) -> None:
        super().__init__(f"retrain job {job.job_id} is {job.state}")
        self.job = job


class RetrainLauncher:
    def __init__(self, settings: ServiceSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.jobs_dir = settings.data_dir.resolve() / "jobs"

    def start(self) -> JobStatus:
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
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        environment = {
            **os.environ,
            "CLAIMS_DATA_DIR": str(self.settings.data_dir.resolve()),
            **(
                {"CLAIMS_DATABASE_URL": self.settings.database_url}
                if self.settings.database_url
                else {}
            ),
        }
        with open(self._log(job.job_id), "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "claims",
                    "retrain",
                    "--data",
                    str(Path(data).resolve()),
                    "--job",
                    job.job_id,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,  # not stopped by a signal to the service
            )
        self._pid_file(job.job_id).write_text(str(process.pid))
        return job

    def status(self, job_id: str) -> JobStatus | None:
        """The job as the store has it; a job whose process died without saying so is failed."""
        job = self.store.job(job_id)
        if job is None or job.state not in ACTIVE or _alive(self._pid_file(job_id)):
            return job
        job = self.store.job(job_id)  # it may have finished between the two reads
        if job is not None and job.state in ACTIVE:
            job = self.store.update_job(
                job_id,
                state=JobState.failed,
                error=f"the retrain process ended without reporting; see {self._log(job_id)}",
            )
        return job

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

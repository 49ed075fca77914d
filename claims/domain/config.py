"""Loading the TOML config that maps a claims file onto tasks, with errors that name the key."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from schemas.config import SpecialistConfig


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


def default_config_path() -> Path:
    return Path(str(resources.files("claims") / "defaults" / "synthetic.toml"))


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, `dotted.key: reason`, the way people read config and API errors."""
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{location}: {item['msg']}")
    return "; ".join(lines)


def load_config(path: str | Path | None = None) -> SpecialistConfig:
    path = Path(path) if path is not None else default_config_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: no such config file") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    try:
        return SpecialistConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {describe_validation_error(error)}") from error

from pathlib import Path

import pytest

from claims.domain.config import ConfigError, load_config

DEFAULT = Path(__file__).parents[1] / "claims" / "defaults" / "synthetic.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_the_default_config_has_three_tasks_and_a_policy() -> None:
    config = load_config()
    assert [task.name for task in config.tasks] == ["claim_type", "severity", "siu_referral"]
    assert config.policy.route_names == ["siu", "complex", "fast_track", "standard"]
    assert len(config.task("claim_type").labels) >= 10


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")


def test_broken_toml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[[tasks]\nname ="))


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    text = DEFAULT.read_text().replace("[training]", "[training]\nepoks = 3")
    with pytest.raises(ConfigError, match=r"training\.epoks"):
        load_config(write(tmp_path, text))


def test_a_policy_naming_an_unknown_label_is_refused(tmp_path: Path) -> None:
    text = DEFAULT.read_text().replace('labels = ["high", "severe"]', 'labels = ["huge"]')
    with pytest.raises(ConfigError, match="huge"):
        load_config(write(tmp_path, text))


def test_a_binary_task_needs_its_positive_label(tmp_path: Path) -> None:
    text = DEFAULT.read_text().replace('positive_label = "1"', 'positive_label = "yes"')
    with pytest.raises(ConfigError, match="positive_label"):
        load_config(write(tmp_path, text))


def test_columns_must_name_claim_fields(tmp_path: Path) -> None:
    text = DEFAULT.read_text().replace("columns = {}", 'columns = { narrative = "text" }')
    with pytest.raises(ConfigError, match="narrative"):
        load_config(write(tmp_path, text))

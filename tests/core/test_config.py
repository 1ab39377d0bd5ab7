"""Configuration: documented defaults, overrides, and one-line errors naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from omni_agent.cli import main
from omni_agent.config import Config, ConfigError, default_yaml_text, load_config


def test_the_documented_yaml_holds_exactly_the_built_in_defaults() -> None:
    documented = Config.model_validate(yaml.safe_load(default_yaml_text()))
    assert documented == Config()


def test_file_then_environment_then_command_line_override_in_that_order(tmp_path: Path) -> None:
    path = tmp_path / "robot.yaml"
    path.write_text("model:\n  temperature: 0.5\n  max_tokens: 99\nrobot:\n  name: Ada\n")
    env = {"OMNI_AGENT__MODEL__TEMPERATURE": "0.7", "OMNI_AGENT__SAFETY__MAX_LINEAR_SPEED": "0.3"}
    config = load_config(path, {"model.temperature": 0.9}, environ=env)
    assert config.model.temperature == 0.9  # CLI beats env beats file
    assert config.model.max_tokens == 99  # from the file
    assert config.safety.max_linear_speed == 0.3  # from the environment
    assert config.robot.name == "Ada"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"safety.max_linear_speed": -1}, "safety.max_linear_speed"),
        ({"model.temperature": "hot"}, "model.temperature"),
        ({"memory.strategy": "magic"}, "memory.strategy"),
        ({"model.typo_field": 1}, "model.typo_field"),
        ({"safety.allowed_skills": ["fly"]}, "safety.allowed_skills.0"),
    ],
)
def test_an_invalid_value_fails_with_one_line_naming_the_field(
    overrides: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides, environ={})
    message = str(info.value)
    assert message.startswith(f"invalid config: {field}:")
    assert "\n" not in message


def test_broken_config_files_are_reported_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad, environ={})
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml", environ={})


def test_the_cli_prints_one_error_line_and_exits_2_on_bad_config(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["--set", "safety.max_linear_speed=-2", "config"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert err.startswith("omni-agent: error: invalid config: safety.max_linear_speed")


def test_the_console_script_is_installed_and_shows_the_effective_config() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "omni_agent.cli", "--set", "robot.name=Ada", "config"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert yaml.safe_load(out)["robot"]["name"] == "Ada"

"""A newcomer's mistakes end `omni-agent sim` with one line that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_agent.cli import main


def test_a_model_url_with_no_server_behind_it_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--model-url", "http://127.0.0.1:9/v1", "--set", "model.retries=0",
         "sim", "--text", "--out", str(tmp_path)]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert "is not answering" in err and "--model-url" in err


def test_a_missing_scenario_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sim", "--text", "--brain", "scripted", "--scenario", str(tmp_path / "x.yaml")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"omni-agent: error: scenario file not found: {tmp_path / 'x.yaml'}"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--all", "--via", "ros"], "--via ros runs the instant brain: add --brain scripted"),
        (["--via", "ros", "--brain", "scripted"], "--via ros needs --all or --scenario FILE"),
    ],
)
def test_via_ros_mistakes_are_one_line_exit_2(
    argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sim", "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"omni-agent: error: {says}"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["sim", "--echo", "loud"], "echo expects GAIN_DB[,DELAY_MS] (e.g. -6,40), got 'loud'"),
        (["--set", "sim.echo=-6,900", "sim"], "invalid config: sim.echo: Value error, echo"),
    ],
)
def test_an_echo_that_is_not_gain_and_delay_is_one_line_exit_2(
    argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*argv, "--text", "--brain", "scripted", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert says in err, err

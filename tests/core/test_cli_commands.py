"""`omni-agent` finds its commands through entry points, and one it cannot load says why
in one line."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from omni_agent import cli


def test_commands_come_from_their_packages() -> None:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    assert {"sim", "replay", "config", "bench", "memory", "ros", "serve"} <= set(
        commands.choices or {}
    )
    benches = commands.choices["bench"]._actions  # type: ignore[index]
    names = next(a for a in benches if a.dest == "bench").choices or {}
    assert {"loop", "brain", "sim", "ros", "serve", "memory", "safety", "faults"} <= set(names)


def test_command_whose_package_is_missing_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ghost = EntryPoint(name="ghost", value="no_such_package.cli:register", group="g")

    def entry_points(**kw: Any) -> list[EntryPoint]:
        assert kw == {"group": cli.COMMANDS_GROUP}
        return [ghost]

    monkeypatch.setattr(cli, "entry_points", entry_points)
    assert cli.main(["ghost", "--anything", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("omni-agent: error: `ghost` needs no_such_package")

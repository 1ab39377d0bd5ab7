"""Every mistake a user can make on the command line ends in one line and exit status 2.

Each case is a file, folder or value handed to `omni-agent` that once ended in a
traceback. They are checked where they enter (config, scenario, arguments, files), before
any model starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from omni_agent.cli import main

SCRIPTED = ["sim", "--text", "--brain", "scripted"]


def _unwritable(tmp: Path) -> Path:
    """A folder no one may create files in (root may write anywhere but in /sys)."""
    if os.geteuid() == 0:
        return Path("/sys/omni-agent-test")
    locked = tmp / "locked"
    locked.mkdir(mode=0o500)
    return locked / "out"


def _file(tmp: Path, name: str = "plain.txt", body: bytes = b"just text\n") -> Path:
    path = tmp / name
    path.write_bytes(body)
    return path


def _folder(tmp: Path) -> Path:
    path = tmp / "a-folder.yaml"
    path.mkdir()
    return path


def _moon(tmp: Path) -> Path:
    return _file(
        tmp, "moon.yaml", b"name: moon\nstart: moon\nlines:\n  - text: Take me to the moon.\n"
    )


CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "config is a directory": (lambda t: ["--config", str(_folder(t)), "config"], "directory"),
    "config is not UTF-8": (
        lambda t: ["--config", str(_file(t, "c.yaml", b"model:\n  name: caf\xe9\n")), "config"],
        "not UTF-8",
    ),
    "scenario is a directory": (
        lambda t: [*SCRIPTED, "--out", str(t), "--scenario", str(_folder(t))],
        "is a directory",
    ),
    "scenario is not UTF-8": (
        lambda t: [*SCRIPTED, "--out", str(t), "--scenario", str(_file(t, "s.yaml", b"\xff\xfe"))],
        "not UTF-8",
    ),
    "start at an unknown place": (
        lambda t: [*SCRIPTED, "--out", str(t), "--scenario", str(_moon(t))],
        "start: no place 'moon'",
    ),
    "--out at a file": (lambda t: [*SCRIPTED, "--out", str(_file(t))], "is a file"),
    "--out unwritable": (lambda t: [*SCRIPTED, "--out", str(_unwritable(t))], "not writable"),
    "--speed -1": (lambda t: [*SCRIPTED, "--out", str(t), "--speed", "-1"], "--speed"),
    "embedded.cache_dir at a file": (
        lambda t: ["--set", f"embedded.cache_dir={_file(t)}", "config"],
        "embedded.cache_dir",
    ),
    "embedded.cache_dir unwritable": (
        lambda t: [
            "--set",
            f"embedded.cache_dir={_unwritable(t)}",
            "sim",
            "--text",
            "--out",
            str(t),
        ],
        "give a writable cache folder (embedded.cache_dir",
    ),
    "malformed --model-url": (lambda t: ["--model-url", "localhost:8000", "config"], "model.url"),
    "replay of a non-JSON log": (
        lambda t: ["replay", str(_file(t, "episode.jsonl", b"this is not json\n"))],
        "episode.jsonl:1: not an episode log line",
    ),
    "replay of a plain file": (lambda t: ["replay", str(_file(t))], "neither a rosbag2 folder"),
    "replay of a folder that is no recording": (
        lambda t: ["replay", str(t)],
        "without metadata.yaml: not a rosbag2 recording",
    ),
    "memory --db unwritable": (
        lambda t: ["memory", "--db", str(_unwritable(t) / "m.db"), "stats"],
        "memory database",
    ),
    "memory --db corrupt": (
        lambda t: ["memory", "--db", str(_file(t, "m.db", b"garbage " * 600)), "stats"],
        "not a usable memory file",
    ),
    "memory show --strategy bogus": (
        lambda t: ["memory", "--db", str(t / "m.db"), "show", "--query", "x", "--strategy", "no"],
        "unknown strategy 'no'",
    ),
    "bench loop --turns 0": (
        lambda t: ["bench", "loop", "--turns", "0", "--out", str(t / "b.json")],
        "--turns must be at least 1",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_argument_or_file_is_one_line_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, expected = CASES[case]
    argv = make(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.count("\n") == 0 and err.startswith("omni-agent: error: "), err
    assert expected in err

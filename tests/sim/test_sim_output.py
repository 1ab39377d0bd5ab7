"""Output fit for logs and CI: piped tables keep every header and cell whole, progress
bars stay off a log, and `sim --all --json` gives machines one JSON document."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from omni_agent.cli import main
from omni_agent.config import Config
from sim.library import COLUMNS, load_library, print_library_report, run_library, scripted_brains
from sim.report import print_table
from sim.scenario import SCENARIOS_DIR


async def test_a_piped_library_table_keeps_headers_names_and_no_progress_frames(
    tmp_path: Path,
) -> None:
    log = io.StringIO()
    console = Console(file=log, width=80)  # what a CI log or `| tee` looks like to rich
    assert not console.is_terminal
    scenarios = load_library(
        [SCENARIOS_DIR / "person-memory.yaml", SCENARIOS_DIR / "greeting.yaml"]
    )
    results = await run_library(
        Config(), scenarios, scripted_brains(Config()), tmp_path, console=console
    )
    assert log.getvalue() == ""  # no progress bar frames in the log
    print_library_report(results, 1.0, console)
    lines = log.getvalue().splitlines()
    header = next(line for line in lines if line.startswith("scenario"))
    assert header.split() == " ".join(COLUMNS).split()
    assert any(line.startswith("person-memory ") and " pass " in line for line in lines)
    assert not any("…" in line or "─" in line for line in lines)


def test_a_terminal_still_gets_a_rich_table() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    print_table(console, "t", ["scenario", "result"], [["greeting", "[green]pass[/]"]])
    assert "─" in out.getvalue() and "greeting" in out.getvalue()


def test_sim_all_json_prints_one_report_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sim", "--all", "--brain", "scripted", "--json", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0
    report = json.loads(out)  # stdout holds the JSON document alone
    assert report["summary"]["episodes"] == len(report["episodes"]) >= 10
    assert report["summary"]["passed"] == report["summary"]["episodes"]
    assert {"scenario", "passed", "failed", "turn_done_ms"} <= set(report["episodes"][0])
    assert "Scenario library" in err


def test_json_without_all_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--brain", "scripted", "--json"]) == 2
    assert capsys.readouterr().err.strip().startswith("omni-agent: error: --json goes with --all")

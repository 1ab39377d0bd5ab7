"""`omni-agent bench safety` runs end to end on a few sequences and reports its figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omni_agent.cli import main


def test_bench_safety_reports_zero_violations_and_its_costs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench-safety.json"
    assert main(["bench", "safety", "--n", "20", "--json", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == report
    ours = report["results"]["envelope"]
    assert ours["actions"] >= 20 and ours["approved"] > 0
    assert ours["violations"] == 0
    assert 0.0 <= ours["false_rejection_share"] <= 1.0
    assert 0 < ours["check_us_p50"] <= ours["check_us_p99"]
    assert report["results"]["previous envelope"]["actions"] == ours["actions"]


def test_bench_safety_refuses_a_bad_count(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "safety", "--n", "0"])
    assert info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err

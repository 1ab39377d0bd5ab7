"""`omni-agent bench speaker` reports a false-accept / false-reject table after a short and
a long enrolment, with strangers near and far in voice, beside the accuracy figures; the
voices and the encoder are the real ones (fewer lines than a full run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench.speaker as bench_speaker
from omni_agent.cli import main

pytestmark = pytest.mark.speech


def test_bench_speaker_reports_the_enrolment_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sim.voice import speech_unavailable

    if (why := speech_unavailable()) is not None:
        pytest.skip(why)
    monkeypatch.setattr(bench_speaker, "TRIAL_LINES", bench_speaker.TRIAL_LINES[:2])
    out = tmp_path / "bench-speaker.json"
    argv = ["bench", "speaker", "--no-listener", "--lines", "4", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Alice rejected" in printed and "near accepted" in printed
    assert "short (1 utterances)" in printed and "long (5 utterances)" in printed
    table = json.loads(out.read_text())["enrolment"]["table"]
    assert set(table) == {"short", "long"}
    for row in table.values():
        assert row["false_reject"].endswith("/2")
        assert row["false_accept_near"].endswith("/4") and row["false_accept_far"].endswith("/4")
        assert row["bob_claiming_alice_accepted"].endswith("/3")

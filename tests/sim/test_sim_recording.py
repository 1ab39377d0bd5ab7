"""A recorded episode replays to the same actions with the deterministic brain."""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_agent.config import Config
from sim.instant_brain import instant_brain
from sim.library import run_scenario
from sim.scenario import Scenario

pytest.importorskip("rosbags")

from sim.recording import McapRecorder, read_recording, replay_file


async def test_a_recording_replays_to_the_same_actions(tmp_path: Path) -> None:
    config = Config()
    scenario = Scenario.load(Path("sim/scenarios/long-multiday.yaml"))
    bag = tmp_path / "episode-bag"
    recorder = McapRecorder(bag, scenario)
    async with instant_brain(config) as brain:
        result = await run_scenario(config, scenario, brain, tmp_path, sinks=[recorder])
    recorder.close()
    assert any(p.suffix == ".mcap" for p in bag.iterdir())
    recorded, events = read_recording(bag)
    assert recorded is not None and recorded.name == scenario.name
    assert {"user", "robot", "action", "state", "turn"} <= {e["kind"] for e in events}
    async with instant_brain(config) as brain:
        report = await replay_file(config, bag, brain)
    assert report.same_actions, report.differences
    assert sum(map(len, report.recorded)) == sum(len(t.executed) for t in result.turns) > 0

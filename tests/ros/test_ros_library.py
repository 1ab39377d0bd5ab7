"""Library scenarios through the real ROS graph grade as they do in process.

Three scenarios (one on days 1 and 3) run through sim_bridge, action_node's gate and
agent_node (restarted between the days, on the same memory file) inside the private
network namespace, with the instant brain in text mode; the same expectations must pass
as when the same scenarios run in process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from omni_agent.config import Config
from sim.instant_brain import instant_brain
from sim.library import run_scenario
from sim.scenario import SCENARIOS_DIR, Scenario

pytestmark = pytest.mark.ros
Worker = Callable[..., tuple[dict[str, Any], str]]
SUBSET = ("greeting", "navigation", "object-across-sessions")


def _config(tmp_path: Path, config: Config) -> str:
    path = tmp_path / "agent.yaml"
    path.write_text(json.dumps(config.model_dump(mode="json")))  # JSON is YAML
    return str(path)


async def _in_process(name: str, tmp_path: Path) -> list[tuple[str, bool]]:
    config = Config()
    async with instant_brain(config) as brain:
        result = await run_scenario(
            config, Scenario.load(SCENARIOS_DIR / f"{name}.yaml"), brain, tmp_path / "in-process"
        )
    return [(c.description, c.passed) for c in result.checks]


async def test_library_subset_meets_the_same_expectations_through_ros(
    ros_worker: Worker, tmp_path: Path
) -> None:
    config = _config(tmp_path, Config())
    got, _ = ros_worker("library_worker.py", str(tmp_path / "ros"), config, *SUBSET, timeout=900)
    assert got["skipped"] == {}
    for name in SUBSET:
        ros = got["results"][name]
        failed = [f"{d}: {why}" for d, ok, why in ros["checks"] if not ok]
        assert not failed, f"{name} through ROS"
        assert [(d, ok) for d, ok, _ in ros["checks"]] == await _in_process(name, tmp_path)
        assert ros["violations"] == []
        assert ros["lines"] == len(Scenario.load(SCENARIOS_DIR / f"{name}.yaml").lines)
    # the day-3 question was answered by a new agent_node process, from the memory file
    sessions = got["results"]["object-across-sessions"]["sessions"]
    assert [s["day"] for s in sessions] == [1, 3]
    assert sessions[0]["pid"] != sessions[1]["pid"]
    assert got["results"]["object-across-sessions"]["memory_probes"] == [1, 1]


def test_memory_probe_through_ros_fails_without_long_term_memory(
    ros_worker: Worker, tmp_path: Path
) -> None:
    """The probe is real: with no memory budget the restarted node cannot answer it."""
    config = Config()
    config.memory.budget_tokens = 0
    got, _ = ros_worker(
        "library_worker.py", str(tmp_path), _config(tmp_path, config), _probe_only(tmp_path)
    )
    assert got["results"]["probe-only"]["memory_probes"] == [0, 1]


def _probe_only(tmp_path: Path) -> str:
    """object-across-sessions without its two drives (real time through ROS, and proved by
    the test above): the same day-1 fact, restart and day-3 question the probe needs."""
    spec = yaml.safe_load((SCENARIOS_DIR / "object-across-sessions.yaml").read_text())
    day_1, day_3 = spec["sessions"]
    day_1["lines"] = [line for line in day_1["lines"] if "keys" in line["text"]]
    spec["name"] = "probe-only"
    spec["expect"] = [e for e in spec["expect"] if e.get("memory_probe")]
    spec["expect"][0]["turn"] = len(day_1["lines"]) + len(day_3["lines"])
    path = tmp_path / "probe-only.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)

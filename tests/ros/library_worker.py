"""Runs inside the private network namespace: library scenarios through the ROS graph.

Usage (from tests/ros/test_ros_library.py only): python library_worker.py OUT CONFIG NAME...
Runs each named library scenario (or scenario file: a NAME ending in .yaml) through
sim_bridge, action_node and agent_node (sim/ros_library.py) and prints one JSON object on
the last stdout line: per scenario, its checks and the agent_node sessions it started.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omni_agent.config import load_config
from ros_nodes.sandbox import assert_sandboxed
from sim.ros_library import run_library_ros
from sim.scenario import SCENARIOS_DIR, Scenario


def main() -> int:
    assert_sandboxed()
    out, config_file, names = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    scenarios = [
        Scenario.load(Path(name) if name.endswith(".yaml") else SCENARIOS_DIR / f"{name}.yaml")
        for name in names
    ]
    results, skipped = run_library_ros(load_config(config_file), scenarios, out)
    report = {
        r.scenario: {
            "checks": [[c.description, c.passed, c.detail] for c in r.checks],
            "memory_probes": list(r.memory_probes),
            "violations": r.violations,
            "sessions": [e.data for e in r.events if e.kind == "sim"],
            "lines": len(r.line_turns),
        }
        for r in results
    }
    print(json.dumps({"results": report, "skipped": skipped}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

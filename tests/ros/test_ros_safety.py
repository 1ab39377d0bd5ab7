"""The fail-safe e-stop, goal refusal and the sim graph's route, with real rclpy nodes in
the private network namespace (safety_worker.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sim.world import World

pytestmark = pytest.mark.ros
Worker = Callable[..., tuple[dict[str, Any], str]]


def _ran(result: dict[str, Any]) -> None:
    assert "error" not in result, result.get("error")
    assert all(result["alive"]), "a node died during the scenario"


def test_an_engaged_estop_survives_a_respawn_of_action_node(
    ros_worker: Worker, tmp_path: Path
) -> None:
    """Regression: /estop was volatile and the gate started released, so after a respawn
    19 of 20 commands reached /cmd_vel with the e-stop still engaged."""
    result, _ = ros_worker("safety_worker.py", "respawn", str(tmp_path))
    _ran(result)
    assert result["passed_before"] > 0  # the gate forwards once released
    assert len(result["after_respawn"]) >= 20  # the new gate answered every command...
    assert set(result["after_respawn"]) == {0.0}  # ...with a stop
    assert result["passed_after_release"] > 0  # and again after an explicit release


def test_a_silent_estop_publisher_stops_the_robot(ros_worker: Worker, tmp_path: Path) -> None:
    result, _ = ros_worker("safety_worker.py", "heartbeat", str(tmp_path))
    _ran(result)
    assert result["passed_before"] > 0
    assert result["stopped"]  # a zero Twist as soon as the silence was noticed
    assert result["forwarded_after_loss"] == []
    assert result["passed_after_return"] > 0


def test_action_node_refuses_goals_in_zones_and_absurd_goals(
    ros_worker: Worker, tmp_path: Path
) -> None:
    """Regression: (6, -0.5) on the stairs and z = 1e308 were forwarded to Nav2."""
    result, stderr = ros_worker("safety_worker.py", "goals", str(tmp_path))
    _ran(result)
    assert result["goals"] == [{"x": 9.0, "y": 2.0, "yaw": 0.0}]  # only the good one
    for reason in (
        "goal (6.00, -0.50) would enter keep-out zone stairs",
        "goal (6.00, 1.10) would enter keep-out zone stairs",
        "would leave the geofence",
        "goal in frame 'odom', not 'map'",
        "goal height 1e+308 m is not on the floor",
    ):
        assert reason in stderr, f"no log line for: {reason}"


def test_the_sim_graph_routes_around_the_stairs(ros_worker: Worker, tmp_path: Path) -> None:
    """Regression: sim_bridge drove straight from the charging dock to (10, 0.5), 80 of
    553 odometry samples inside the stairs."""
    result, _ = ros_worker("safety_worker.py", "route", str(tmp_path))
    _ran(result)
    world = World.load()
    poses = result["poses"]
    assert len(poses) > 50
    breaches = [p for p in poses if world.violation(p[0], p[1], 0.2)]
    assert breaches == []
    assert poses[-1] == pytest.approx([10.0, 0.5], abs=0.01)

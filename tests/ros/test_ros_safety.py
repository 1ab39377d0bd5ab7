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


def test_an_estop_engaged_by_a_second_device_survives_every_respawn(
    ros_worker: Worker, tmp_path: Path
) -> None:
    """Regression: a panel released the e-stop, an operator then engaged it; a respawned
    action_node got both latched states in arbitrary order and opened in 8 of 16 respawns,
    forwarding non-zero twists."""
    result, stderr = ros_worker(
        "safety_worker.py", "two_publishers", str(tmp_path), "8", timeout=400
    )
    _ran(result)
    assert len(result["forwarded_per_respawn"]) == 8
    assert result["forwarded_per_respawn"] == [0] * 8  # not one twist reached the base
    assert result["opened"] == 0
    assert result["passed_after_release"] > 0  # a release newer than the engage opens it
    assert "e-stop stays ENGAGED: release published before this gate started" in stderr


def test_action_node_takes_its_limits_and_zones_from_the_agents_config(
    ros_worker: Worker, tmp_path: Path
) -> None:
    """Regression: action_node used only its ROS speed parameters and, without `world`,
    had no zones: it forwarded a goal on the stairs."""
    result, stderr = ros_worker("safety_worker.py", "config", str(tmp_path))
    _ran(result)
    assert result["goals"] == [{"x": 9.0, "y": 2.0, "yaw": 0.0}]  # not the one on the stairs
    assert "goal (6.00, -0.50) would enter keep-out zone stairs" in stderr
    assert result["forwarded"] == [0.2]  # 0.4 m/s is over the config's 0.3 (param: 1.5)
    assert "max_linear_speed 1.5 m/s exceeds the config's 0.3 m/s; using 0.3" in stderr
    assert "no keep-out zones configured" not in stderr


def test_a_silent_estop_publisher_stops_the_robot(ros_worker: Worker, tmp_path: Path) -> None:
    result, stderr = ros_worker("safety_worker.py", "heartbeat", str(tmp_path))
    _ran(result)
    # started without a config's or world's zones, it says so loudly
    assert "no keep-out zones configured" in stderr and "set safety.keepout" in stderr
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

"""Runs inside the private network namespace: the safety scenarios of action_node and
sim_bridge, one per run, reported as one JSON object on the last stdout line.

Usage (from tests/ros/test_ros_safety.py only): python safety_worker.py SCENARIO TMPDIR [N]
Waits are on events (matching, status and messages arriving), never fixed sleeps, with
deadlines sized for a loaded 2-core machine; the probe is the e-stop device (latched
state, heartbeat), as on a robot.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import rclpy
import yaml
from graph_worker import Probe
from nav_msgs.msg import Odometry as RosOdometry
from std_msgs.msg import Bool

from omni_agent.messages import Pose2D
from ros_nodes import convert, qos
from ros_nodes.graph import ACTION, SIM, stop_processes
from ros_nodes.sandbox import assert_sandboxed

FAST = {"max_linear_speed": 1.5, "max_angular_speed": 3.0}
STAIRS = {"name": "stairs", "x_min": 5.0, "y_min": -1.5, "x_max": 7.0, "y_max": 1.0}
WAIT_S = 30.0
"""Deadline for any one event: generous, as a node may start slowly on a busy machine."""


def node(spec: Any, params: dict[str, Any]) -> subprocess.Popen[bytes]:
    args = [f"{k}:={v}" for k, v in params.items()]
    extra = [a for kv in args for a in ("-p", kv)]
    return subprocess.Popen([*spec.command(), *extra])


def wait_gate(probe: Probe, status: str, since: int = 0, timeout: float = WAIT_S) -> None:
    probe.spin_until(
        lambda: any(s.startswith(status) for s in probe.gate[since:]),
        timeout,
        f"action_node status {status!r}",
    )


def forwarded(probe: Probe, since: float) -> list[float]:
    return [lin for t, lin, _ in probe.cmd if t > since and lin != 0.0]


def commands(probe: Probe, n: int, period: float = 0.05) -> None:
    for _ in range(n):
        probe.agent_cmd.publish(convert.to_ros_twist(0.3, 0.0))
        probe.spin_for(period)


def matched(probe: Probe) -> None:
    probe.spin_until(
        lambda: (
            probe.agent_cmd.get_subscription_count() > 0
            and probe.estop.get_subscription_count() > 0
            and all(s.get_publisher_count() > 0 for s in probe.subs[:1])
        ),
        WAIT_S,
        "action_node to match",
    )


def respawn(probe: Probe, procs: list[Any], params: dict[str, Any]) -> float:
    """SIGKILL action_node, start it again and wait until the new gate answers a command
    (a blocked one is answered with a zero Twist); returns when it was started."""
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    seen = len(probe.gate)
    procs[0] = node(ACTION, params)
    respawned = time.monotonic()
    wait_gate(probe, "e-stop engaged", since=seen)  # the respawned gate's own status
    while not [lin for t, lin, _ in probe.cmd if t > respawned]:
        commands(probe, 1)
        if time.monotonic() - respawned > WAIT_S:
            raise TimeoutError(f"timed out after {WAIT_S:g} s waiting for the respawned gate")
    return respawned


def scenario_respawn(probe: Probe, procs: list[Any], tmp: Path) -> dict[str, Any]:
    """E-stop engaged, action_node killed and respawned: nothing passes until release."""
    matched(probe)
    probe.release()
    commands(probe, 3)
    passed_before = len(forwarded(probe, 0.0))
    probe.estop.publish(Bool(data=True))
    wait_gate(probe, "e-stop engaged", since=len(probe.gate))
    # commands until the new gate answers, so the count below is of commands it really saw
    respawned = respawn(probe, procs, {})
    commands(probe, 20)
    during = [lin for t, lin, _ in probe.cmd if t > respawned]
    probe.release()
    released = time.monotonic()
    commands(probe, 5)
    return {
        "passed_before": passed_before,
        "after_respawn": during,
        "passed_after_release": len(forwarded(probe, released)),
    }


def scenario_heartbeat(probe: Probe, procs: list[Any], tmp: Path) -> dict[str, Any]:
    """The e-stop publisher goes silent: the gate stops the robot and blocks commands."""
    matched(probe)
    probe.release()
    commands(probe, 5)
    passed = len(forwarded(probe, 0.0))
    probe.beating = False
    silent = time.monotonic()
    seen = len(probe.gate)
    # keep commanding until the gate notices the silence, then a while longer
    while not any(s.startswith("no e-stop heartbeat") for s in probe.gate[seen:]):
        commands(probe, 1)
        if time.monotonic() - silent > WAIT_S:
            raise TimeoutError(f"timed out after {WAIT_S:g} s waiting for the heartbeat loss")
    noticed = time.monotonic()
    commands(probe, 20)
    lost = forwarded(probe, noticed)
    zero_after = [t for t, lin, _ in probe.cmd if t > silent and lin == 0.0]
    probe.beating = True
    wait_gate(probe, "open", since=len(probe.gate))
    back = time.monotonic()
    commands(probe, 5)
    return {
        "passed_before": passed,
        "forwarded_after_loss": lost,
        "stopped": bool(zero_after) and zero_after[0] <= noticed + 0.1,
        "passed_after_return": len(forwarded(probe, back)),
    }


def scenario_goals(probe: Probe, procs: list[Any], tmp: Path) -> dict[str, Any]:
    """Goals inside a keep-out zone, off the floor or in the wrong frame never pass."""
    matched(probe)
    probe.spin_until(lambda: probe.subs[1].get_publisher_count() > 0, WAIT_S, "goal_pose to match")
    probe.release()
    bad = [
        convert.to_ros_pose(Pose2D(x=6.0, y=-0.5)),  # on the stairs
        convert.to_ros_pose(Pose2D(x=6.0, y=1.1)),  # the footprint would overhang them
        convert.to_ros_pose(Pose2D(x=40.0, y=2.0)),  # outside the rooms
        convert.to_ros_pose(Pose2D(x=9.0, y=2.0), frame_id="odom"),
    ]
    high = convert.to_ros_pose(Pose2D(x=9.0, y=2.0))
    high.pose.position.z = 1e308
    bad.append(high)
    for goal in bad:
        probe.agent_goal.publish(goal)
    probe.agent_goal.publish(convert.to_ros_pose(Pose2D(x=9.0, y=2.0)))  # a good one, last
    probe.spin_until(lambda: bool(probe.goals), WAIT_S, "the good goal on /goal_pose")
    return {"goals": [convert.from_ros_pose(g).model_dump() for g in probe.goals]}


def scenario_route(probe: Probe, procs: list[Any], tmp: Path) -> dict[str, Any]:
    """From the charging dock to (10, 0.5): sim_bridge follows the planner around the
    stairs instead of straight through them."""
    poses: list[tuple[float, float]] = []
    probe.create_subscription(
        RosOdometry,
        qos.ODOM,
        lambda m: poses.append((m.pose.pose.position.x, m.pose.pose.position.y)),
        qos.SENSOR,
    )
    matched(probe)
    probe.spin_until(lambda: len(poses) > 2, WAIT_S, "odometry from sim_bridge")
    probe.release()
    goal = Pose2D(x=10.0, y=0.5)
    start = poses[-1]
    # a goal sent before the gate's and sim_bridge's readers match is lost: resend (the
    # route is planned again from where the robot is) until the robot starts turning
    deadline = time.monotonic() + WAIT_S
    while poses[-1] == start:
        probe.agent_goal.publish(convert.to_ros_pose(goal))
        probe.spin_for(0.5)
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {WAIT_S:g} s waiting for the goal to be driven")
    probe.spin_until(
        lambda: math.hypot(poses[-1][0] - goal.x, poses[-1][1] - goal.y) < 0.01,
        2 * WAIT_S,
        "the simulated robot to reach (10, 0.5)",
    )
    return {"poses": poses}


def scenario_two_publishers(probe: Probe, procs: list[Any], tmp: Path) -> dict[str, Any]:
    """A panel released the e-stop, then an operator engaged it from another device;
    action_node is respawned N times and each time receives both latched states, in
    whatever order discovery delivers them: it must never open."""
    # the operator's device is another process on a robot: its own DDS participant, so
    # discovery matches it with the gate independently of the probe's
    context = rclpy.Context()
    rclpy.init(context=context)
    device = rclpy.create_node("operator_estop", context=context)
    operator = device.create_publisher(Bool, qos.ESTOP, qos.ESTOP_STATE)
    matched(probe)
    probe.release()  # the panel (the probe's own e-stop publisher): released
    operator.publish(Bool(data=True))  # then the operator: engaged
    wait_gate(probe, "e-stop engaged", since=len(probe.gate))
    forwarded_per_respawn: list[int] = []
    opened = 0
    for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 8):
        respawned = respawn(probe, procs, {})
        since = len(probe.gate) - 1  # the new gate's first status
        # both latched states arrive when the new reader matches each writer: command
        # until it has matched both, and a while longer
        probe.spin_until(
            lambda: (
                probe.estop.get_subscription_count() > 0 and operator.get_subscription_count() > 0
            ),
            WAIT_S,
            "the respawned gate to match both e-stop publishers",
        )
        commands(probe, 30)
        forwarded_per_respawn.append(len(forwarded(probe, respawned)))
        opened += "open" in probe.gate[since:]
    # a release newer than the engage opens the gate again
    probe.release()
    released = time.monotonic()
    commands(probe, 5)
    device.destroy_node()
    rclpy.try_shutdown(context=context)
    return {
        "forwarded_per_respawn": forwarded_per_respawn,
        "opened": opened,
        "passed_after_release": len(forwarded(probe, released)),
    }


def scenario_config(probe: Probe, procs: list[Any], tmp: Path) -> dict[str, Any]:
    """action_node without a world, on the agent's config: its keep-out zone and its
    speed limits hold, whatever the ROS parameters ask."""
    matched(probe)
    probe.spin_until(lambda: probe.subs[1].get_publisher_count() > 0, WAIT_S, "goal_pose to match")
    probe.release()
    probe.agent_goal.publish(convert.to_ros_pose(Pose2D(x=6.0, y=-0.5)))  # on the stairs
    probe.agent_goal.publish(convert.to_ros_pose(Pose2D(x=9.0, y=2.0)))  # a good one, last
    probe.spin_until(lambda: bool(probe.goals), WAIT_S, "the good goal on /goal_pose")
    start = time.monotonic()
    for linear in (0.4, 0.2):  # over the config's 0.3 m/s (the parameter says 1.5), within
        probe.agent_cmd.publish(convert.to_ros_twist(linear, 0.0))
        probe.spin_for(0.05)
    probe.spin_until(lambda: bool(forwarded(probe, start)), WAIT_S, "the slow Twist")
    probe.spin_for(0.2)
    return {
        "goals": [convert.from_ros_pose(g).model_dump() for g in probe.goals],
        "forwarded": forwarded(probe, start),
    }


SCENARIOS = {
    "two_publishers": scenario_two_publishers,
    "config": scenario_config,
    "respawn": scenario_respawn,
    "heartbeat": scenario_heartbeat,
    "goals": scenario_goals,
    "route": scenario_route,
}


def start(scenario: str, tmp: Path) -> list[subprocess.Popen[bytes]]:
    if scenario == "heartbeat":
        return [node(ACTION, {"estop_heartbeat_timeout_s": 0.5})]
    if scenario == "goals":
        return [node(ACTION, {"world": "default"})]
    if scenario == "config":
        safety = {"keepout": [STAIRS], "max_linear_speed": 0.3}
        (tmp / "agent.yaml").write_text(yaml.safe_dump({"safety": safety}))
        return [node(ACTION, {**FAST, "config_file": str(tmp / "agent.yaml")})]
    if scenario != "route":
        return [node(ACTION, {})]
    # the gate gets the shipped site, the simulator a world on that site
    (tmp / "world.yaml").write_text(
        yaml.safe_dump({"site": "default", "robot_start": "charging dock"})
    )
    speeds = {**FAST, "navigate_speed": 1.5, "turn_speed": 3.0}
    (tmp / "agent.yaml").write_text(yaml.safe_dump({"safety": speeds}))
    config = {"config_file": str(tmp / "agent.yaml")}
    return [
        node(ACTION, {**FAST, **config, "world": "default"}),
        node(SIM, {**FAST, **config, "world": str(tmp / "world.yaml"), "odom_rate_hz": 50.0}),
    ]


def main() -> int:
    assert_sandboxed()
    scenario, tmp = sys.argv[1], Path(sys.argv[2])
    procs = start(scenario, tmp)
    rclpy.init()
    result: dict[str, Any] = {}
    probe: Probe | None = None
    try:
        probe = Probe(localize=False)
        result = SCENARIOS[scenario](probe, procs, tmp)
        result["alive"] = [p.poll() is None for p in procs]
    except TimeoutError as exc:
        result = {"error": str(exc), "alive": [p.poll() is None for p in procs]}
    finally:
        if probe is not None:
            probe.executor_.shutdown()
            probe.destroy_node()
        stop_processes(procs, timeout_s=WAIT_S)
        rclpy.try_shutdown()
    result["exit_codes"] = [p.returncode for p in procs]
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

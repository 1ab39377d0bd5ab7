"""RosRobot: skills become velocity streams and goals; halt and e-stop stop them."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed")

from omni_agent.actions import Move, NavigateTo, Stop, Turn
from omni_agent.messages import Pose2D
from ros_nodes.robot import MotionLimits, RosRobot


def make() -> tuple[RosRobot, list[tuple[float, float]], list[Pose2D]]:
    sent: list[tuple[float, float]] = []
    goals: list[Pose2D] = []
    robot = RosRobot(
        lambda lin, ang: sent.append((lin, ang)),
        goals.append,
        places={"kitchen": Pose2D(x=3.0, y=0.0)},
        limits=MotionLimits(rate_hz=50.0, goal_timeout_s=1.0),
    )
    return robot, sent, goals


async def test_move_streams_velocity_then_stops() -> None:
    robot, sent, _ = make()
    result = await robot.execute(Move(linear=0.2, duration=0.1))
    assert result.ok
    assert sent[0] == (0.2, 0.0) and sent[-1] == (0.0, 0.0)
    assert len(sent) >= 4  # re-sent while moving: keeps the gate's watchdog fed


async def test_turn_uses_the_turn_speed_in_the_right_direction() -> None:
    robot, sent, _ = make()
    robot.limits.turn_speed = 3.0
    assert (await robot.execute(Turn(degrees=-30))).ok
    assert sent[0] == (0.0, -3.0)


async def test_halt_interrupts_a_running_move() -> None:
    robot, sent, _ = make()
    task = asyncio.create_task(robot.execute(Move(linear=0.2, duration=5.0)))
    await asyncio.sleep(0.05)
    await robot.halt()
    result = await asyncio.wait_for(task, 1.0)
    assert not result.ok and sent[-1] == (0.0, 0.0)


async def test_estop_refuses_motion_but_allows_stop() -> None:
    robot, sent, _ = make()
    robot.estop = True
    assert not (await robot.execute(Move(linear=0.2, duration=0.1))).ok
    assert (await robot.execute(Stop())).ok
    assert sent == [(0.0, 0.0)]


async def test_navigate_sends_a_goal_and_waits_for_odometry() -> None:
    robot, _, goals = make()
    task = asyncio.create_task(robot.execute(NavigateTo(place="kitchen")))
    await asyncio.sleep(0.05)
    assert goals == [Pose2D(x=3.0, y=0.0)]
    robot.update_pose(Pose2D(x=2.9, y=0.05))
    assert (await asyncio.wait_for(task, 1.0)).ok
    assert not (await robot.execute(NavigateTo(place="attic"))).ok

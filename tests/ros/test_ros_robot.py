"""RosRobot: skills become velocity streams and goals; halt and e-stop stop them."""

from __future__ import annotations

import asyncio
import math

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed")

from omni_agent.actions import ActionRejected, Move, NavigateTo, Stop, Turn
from omni_agent.config import Rect, SafetyConfig
from omni_agent.errors import UserError
from omni_agent.kinematics import Kinematics, checked_kinematics
from omni_agent.messages import Pose2D
from ros_nodes.robot import MotionLimits, RosRobot


def make(localized: bool = True) -> tuple[RosRobot, list[tuple[float, float]], list[Pose2D]]:
    sent: list[tuple[float, float]] = []
    goals: list[Pose2D] = []
    robot = RosRobot(
        lambda lin, ang: sent.append((lin, ang)),
        goals.append,
        places={"kitchen": Pose2D(x=3.0, y=0.0)},
        limits=MotionLimits(rate_hz=50.0, goal_timeout_s=1.0),
    )
    if localized:
        robot.update_pose(Pose2D(x=0.0, y=0.0))
        robot.update_map_pose(Pose2D(x=0.0, y=0.0))
    return robot, sent, goals


async def test_move_streams_velocity_then_stops() -> None:
    robot, sent, _ = make()
    result = await robot.execute(Move(linear=0.2, duration=0.1))
    assert result.ok
    assert sent[0] == (0.2, 0.0) and sent[-1] == (0.0, 0.0)
    assert len(sent) >= 4  # re-sent while moving: keeps the gate's watchdog fed


async def test_turn_uses_the_turn_speed_in_the_right_direction() -> None:
    robot, sent, _ = make()
    robot.kinematics = Kinematics(turn_speed=3.0)
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


async def test_nothing_moves_before_a_map_frame_pose() -> None:
    """Regression: the pose read (0, 0, 0) until the first /odom, and odometry (odom
    frame) was checked against zones drawn in the map frame."""
    robot, sent, goals = make(localized=False)
    robot.update_pose(Pose2D(x=1.0, y=2.0))  # odometry alone is not a map pose
    for action in (Move(linear=0.2, duration=0.1), Turn(degrees=10), NavigateTo(place="kitchen")):
        with pytest.raises(ActionRejected, match="not localized in the map frame"):
            await robot.execute(action)
    assert sent == [] and goals == []
    assert (await robot.execute(Stop())).ok  # stopping is always allowed


def test_the_map_pose_is_odometry_through_the_localizers_transform() -> None:
    robot, _, _ = make(localized=False)
    robot.update_pose(Pose2D(x=1.0, y=0.0, yaw=0.0))  # odom frame
    # the localizer puts the robot at (5, 5) facing +y: map-from-odom turns by 90 degrees
    robot.update_map_pose(Pose2D(x=5.0, y=5.0, yaw=math.pi / 2))
    assert robot.localized
    robot.update_pose(Pose2D(x=2.0, y=0.0, yaw=0.0))  # drove 1 m forward in odom
    assert robot.pose.x == pytest.approx(5.0) and robot.pose.y == pytest.approx(6.0)
    assert robot.pose.yaw == pytest.approx(math.pi / 2)


def test_turns_run_at_the_configured_speed_and_never_over_the_limit() -> None:
    robot, _, _ = make()
    robot.configure(SafetyConfig(max_angular_speed=0.5))
    assert robot.kinematics.turn_speed == 0.5  # derived from the lowered limit
    with pytest.raises(UserError, match=r"over the 0\.5 rad/s limit"):
        checked_kinematics(SafetyConfig(max_angular_speed=0.5), Kinematics(turn_speed=1.0))


async def test_a_motion_is_refused_at_once_before_localization() -> None:
    """Regression: a move checked against the pose before localization waited for the
    localizer's first pose and then drove from there, unchecked."""
    robot, sent, _ = make(localized=False)
    task = asyncio.create_task(robot.execute(Move(linear=0.2, duration=0.05)))
    await asyncio.sleep(0)  # one loop pass: had it waited, the pose would arrive now
    robot.update_map_pose(Pose2D(x=1.0, y=1.0))
    with pytest.raises(ActionRejected, match="not localized"):
        await asyncio.wait_for(task, 1.0)
    assert sent == []


async def test_execution_checks_the_envelope_again_from_where_the_robot_is() -> None:
    robot, sent, goals = make()
    stairs = Rect(name="stairs", x_min=2.3, y_min=-1.0, x_max=3.0, y_max=1.0)
    robot.configure(SafetyConfig(keepout=[stairs]))
    assert (await robot.execute(Move(linear=0.2, duration=0.05))).ok  # from (0, 0): clear
    robot.update_map_pose(Pose2D(x=2.0, y=0.0))  # localized anew: 0.3 m from the stairs
    sent.clear()
    with pytest.raises(ActionRejected, match="keep-out zone stairs"):
        await robot.execute(Move(linear=0.2, duration=1.0))
    with pytest.raises(ActionRejected, match="keep-out zone stairs"):
        await robot.execute(NavigateTo(x=2.5, y=0.0))
    assert sent == [] and goals == []
    assert (await robot.execute(Turn(degrees=90))).ok  # turning in place stays allowed

"""Kinematics, walls and doors, the camera renderer and the --view GIF."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest

from omni_agent.actions import Move, NavigateTo, Turn
from omni_agent.events import ActionDone, UserSaid
from omni_agent.messages import Pose2D
from omni_agent.transport import CAMERA, Bus
from sim.clock import SimClock
from sim.render import render
from sim.robot import SimRobot
from sim.world import World


@pytest.fixture(scope="module")
def world() -> World:
    return World.load()


def robot_at(world: World, x: float, y: float, yaw: float = 0.0, **kw: object) -> SimRobot:
    return SimRobot(world, Bus(), Pose2D(x=x, y=y, yaw=yaw), **kw)  # type: ignore[arg-type]


def test_straight_move_covers_speed_times_duration(world: World) -> None:
    robot = robot_at(world, 1.0, 2.0)
    result = asyncio.run(robot.execute(Move(linear=0.5, angular=0.0, duration=2.0)))
    assert result.ok
    assert robot.pose.x == pytest.approx(2.0, abs=1e-6)
    assert robot.pose.y == pytest.approx(2.0, abs=1e-6)
    assert robot.sim_time == pytest.approx(2.0)


def test_turn_changes_heading_only(world: World) -> None:
    robot = robot_at(world, 2.5, 2.0)
    asyncio.run(robot.execute(Turn(degrees=90)))
    assert robot.pose.yaw == pytest.approx(math.pi / 2, abs=1e-6)
    assert (robot.pose.x, robot.pose.y) == pytest.approx((2.5, 2.0))


def test_arc_follows_unicycle_kinematics(world: World) -> None:
    robot = robot_at(world, 2.5, 1.0)
    asyncio.run(robot.execute(Move(linear=0.5, angular=0.5, duration=math.pi)))
    # a quarter circle of radius 1 to the left
    assert robot.pose.x == pytest.approx(3.5, abs=1e-6)
    assert robot.pose.y == pytest.approx(2.0, abs=1e-6)
    assert robot.pose.yaw == pytest.approx(math.pi / 2, abs=1e-6)


def test_wall_stops_the_robot(world: World) -> None:
    robot = robot_at(world, 4.0, 3.5)  # living room, facing the wall at x=5 (no door there)
    result = asyncio.run(robot.execute(Move(linear=0.5, angular=0.0, duration=4.0)))
    assert not result.ok
    assert "blocked" in result.detail
    assert 4.9 < robot.pose.x < 5.0
    assert world.room_at(robot.pose.x, robot.pose.y).name == "living room"  # type: ignore[union-attr]


def test_door_lets_the_robot_through(world: World) -> None:
    robot = robot_at(world, 4.0, 2.0)  # facing the living room - hallway door
    result = asyncio.run(robot.execute(Move(linear=0.5, angular=0.0, duration=4.0)))
    assert result.ok
    assert robot.pose.x == pytest.approx(6.0)
    assert robot.rooms_visited == ["living room", "hallway"]


@pytest.mark.parametrize("place", ["kitchen table", "bedroom", "sofa", "charging dock", "kitchen"])
def test_navigate_through_doors_reaches_each_place(world: World, place: str) -> None:
    robot = SimRobot(world, Bus())
    result = asyncio.run(robot.execute(NavigateTo(place=place)))
    assert result.ok, result.detail
    assert robot.pose.distance_to(world.places[place]) < 1e-6
    assert robot.violations == []
    for (_, a), (_, b) in zip(robot.trail, robot.trail[1:], strict=False):
        assert not world.blocked(a.x, a.y, b.x, b.y)


def test_odometry_noise_is_seeded_and_off_by_default(world: World) -> None:
    move = Move(linear=0.5, angular=0.0, duration=2.0)
    exact = robot_at(world, 1.0, 2.0)
    asyncio.run(exact.execute(move))
    assert exact.odometry == exact.pose
    poses = []
    for _ in range(2):
        noisy = robot_at(world, 1.0, 2.0, odom_noise=0.05, seed=3)
        asyncio.run(noisy.execute(move))
        poses.append(noisy.odometry)
    assert poses[0] == poses[1]
    assert poses[0] != noisy.pose


def test_render_shape_and_determinism(world: World) -> None:
    pose = Pose2D(x=9.0, y=2.0, yaw=0.5)
    a, b = render(world, pose), render(world, pose)
    assert a.shape == (120, 160, 3) and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes()
    other = render(world, Pose2D(x=9.0, y=2.0, yaw=2.0))
    assert a.tobytes() != other.tobytes()
    assert render(world, pose, 64, 48).shape == (48, 64, 3)


def test_render_shows_an_object_in_its_colour(world: World) -> None:
    cup = world.places["kitchen table"]
    pose = Pose2D(x=8.5, y=cup.y, yaw=0.0)  # facing the red cup 1 m ahead
    image = render(world, pose)
    assert (image[:, 70:90] == (200, 30, 30)).all(axis=-1).any()


def test_robot_publishes_camera_frames_when_it_moves(world: World) -> None:
    bus = Bus()
    frames = bus.subscribe(CAMERA)
    robot = SimRobot(world, bus)
    asyncio.run(robot.execute(Turn(degrees=45)))
    asyncio.run(robot.execute(NavigateTo(place="kitchen")))
    assert robot.frames >= 3
    latest = bus.latest(CAMERA)
    assert latest is not None and (latest.width, latest.height) == (160, 120)
    assert frames is not None


def test_view_gif_is_written(world: World, tmp_path: Path) -> None:
    from sim.view import EpisodeView

    robot = SimRobot(world, Bus())
    view = EpisodeView(tmp_path / "episode.gif", "test")
    view.attach(robot, SimClock())
    view(UserSaid("Alice", "go to the kitchen"))
    asyncio.run(robot.execute(NavigateTo(place="kitchen")))
    view(ActionDone(True, {"skill": "navigate_to"}, "ok"))
    path = view.close()
    assert path.exists() and path.stat().st_size > 1000

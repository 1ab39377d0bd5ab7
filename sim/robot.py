"""A simulated robot that executes validated actions in the world.

Every skill becomes a trajectory of the shared motion model (omni_agent/kinematics.py),
the same one the safety envelope checked, and is followed in small time steps, each pose
an exact closed form; a step that would cross a wall is not taken, so the robot stops at
walls and the ActionResult says it was blocked. `navigate_to` follows the world's route
planner (sim/world.py), the planner the envelope checked. Time advances a simulated
clock instead of sleeping, so episodes run faster than real time. After every motion it
publishes odometry (optionally noisy, seeded), the camera's semantic channel and an RGB
frame, and it checks the world's ground-truth safety rules for its whole footprint.
"""

from __future__ import annotations

import math
import random

from omni_agent.actions import (
    Action,
    ActionResult,
    LookAt,
    Move,
    NavigateTo,
    Say,
    Stop,
    Turn,
)
from omni_agent.config import SafetyConfig
from omni_agent.kinematics import Kinematics, Trajectory, advance, checked_kinematics, wrap
from omni_agent.messages import ImageFrame, Odometry, Pose2D
from omni_agent.transport import CAMERA, ODOM, SCENE, Bus
from sim.clock import SimClock
from sim.world import World

STEP_S = 0.05
"""Time step of the simulation (2 cm at the navigation speed)."""


class SimRobot:
    def __init__(
        self,
        world: World,
        bus: Bus,
        start: Pose2D | None = None,
        clock: SimClock | None = None,
        *,
        odom_noise: float = 0.0,
        seed: int = 0,
        camera: tuple[int, int] | None = (160, 120),
        camera_period_s: float = 0.0,
        safety: SafetyConfig | None = None,
        kinematics: Kinematics | None = None,
    ) -> None:
        self.world = world
        self.kinematics = checked_kinematics(safety or SafetyConfig(), kinematics)
        """The motion model the envelope checks against: the same config builds both."""
        self.bus = bus
        self.clock = clock
        """Motion sleeps on this clock when given (an episode); else only sim_time moves."""
        self._pose = start or world.places[world.robot_start]
        self.odom_noise = odom_noise
        """Std of the odometry error per metre (and per radian) travelled; 0: exact."""
        self._rng = random.Random(seed)
        self._odom = self._pose
        self.camera = camera
        """(width, height) of the RGB frames on CAMERA; None: no frames."""
        self.camera_period_s = camera_period_s
        """Least simulated time between frames (0: a frame whenever the pose changed)."""
        self._frame_pose: Pose2D | None = None
        self._frame_t = -math.inf
        self.frames = 0
        self.sim_time = 0.0
        self.violations: list[str] = []
        self.halts = 0
        self.blocked = 0
        self.trail: list[tuple[float, Pose2D]] = [(0.0, self._pose)]
        """(simulated time, pose) at the end of every motion (every leg of a route)."""
        self.last_path: list[Pose2D] = [self._pose]
        """Every step's pose of the last action (what was driven, for checks)."""
        room = world.room_at(self._pose.x, self._pose.y)
        self.rooms_visited: list[str] = [room.name] if room else []
        self.publish_state()

    @property
    def pose(self) -> Pose2D:
        return self._pose

    @property
    def odometry(self) -> Pose2D:
        """The pose as odometry reports it (the true pose unless odom_noise is set)."""
        return self._odom

    @property
    def place(self) -> str | None:
        return self.world.place_at(self._pose, within_m=1.5)

    def publish_state(self) -> None:
        self.bus.publish(ODOM, Odometry(pose=self._odom))
        self.bus.publish(SCENE, self.world.scene(self._pose))
        self._publish_frame()

    def _publish_frame(self) -> None:
        if self.camera is None or self._pose == self._frame_pose:
            return
        if self.sim_time - self._frame_t < self.camera_period_s:
            return
        from sim.render import render

        width, height = self.camera
        image = render(self.world, self._pose, width, height)
        self.bus.publish(CAMERA, ImageFrame(width=width, height=height, data=image.tobytes()))
        self._frame_pose, self._frame_t = self._pose, self.sim_time
        self.frames += 1

    async def execute(self, action: Action) -> ActionResult:
        raw = action.model_dump(exclude_none=True)
        traj = self.plan(action)
        self.last_path = [self._pose]
        if traj is None:
            detail = "no route that keeps clear of the keep-out zones; did not move"
            return ActionResult(action=raw, ok=False, detail=detail)
        ok = await self._follow(traj)
        self.publish_state()
        here = f"now at {self.place or 'unnamed spot'}"
        if not ok:
            self.blocked += 1
            x, y = self._pose.x, self._pose.y
            return ActionResult(
                action=raw, ok=False, detail=f"blocked by a wall at ({x:.2f}, {y:.2f}); {here}"
            )
        return ActionResult(action=raw, ok=True, detail=here)

    def plan(self, action: Action) -> Trajectory | None:
        """The trajectory this robot drives for the action from where it is (None: no
        route); the safety envelope predicts the same one."""
        kin, pose = self.kinematics, self._pose
        if isinstance(action, NavigateTo):
            target = navigate_target(self.world, action)
            route = self.world.route(pose, target, kin.clearance)
            return None if route is None else kin.navigate(pose, route)
        if isinstance(action, Move):
            return kin.move(pose, action.linear, action.angular, action.duration)
        if isinstance(action, Turn):
            return kin.turn(pose, math.radians(action.degrees))
        if isinstance(action, LookAt):
            marks = {**self.world.landmark_poses(), **self.world.places}
            where = marks[_match(marks, action.target)]
            return kin.look_at(pose, where.x, where.y)
        assert isinstance(action, Stop | Say)
        return Trajectory(pose)

    async def _follow(self, traj: Trajectory) -> bool:
        """Drive the trajectory segment by segment in STEP_S steps, each pose exact; stops
        before a step that crosses a wall. False: a wall stopped it."""
        x, y, yaw = self._pose.x, self._pose.y, self._pose.yaw
        free = True
        for seg in traj.segments:
            steps = max(1, math.ceil(seg.duration / STEP_S))
            dt = seg.duration / steps
            x0, y0, yaw0 = x, y, yaw
            elapsed = 0.0
            for k in range(1, steps + 1):
                nx, ny, nyaw = advance(x0, y0, yaw0, seg.linear, seg.angular, k * dt)
                if (nx != x or ny != y) and self.world.blocked(x, y, nx, ny):
                    free = False
                    break
                self._odometry_step(math.hypot(nx - x, ny - y), nyaw - yaw)
                x, y, yaw = nx, ny, nyaw
                elapsed += dt
                self._check(x, y)
                self.last_path.append(Pose2D(x=x, y=y, yaw=wrap(yaw)))
            self._pose = Pose2D(x=x, y=y, yaw=wrap(yaw))
            if self.odom_noise <= 0.0:
                self._odom = self._pose
            await self._take(elapsed)
            self.trail.append((self._now(), self._pose))
            self.bus.publish(ODOM, Odometry(pose=self._odom))
            if not free:
                break
        return free

    def _odometry_step(self, dist: float, dyaw: float) -> None:
        if self.odom_noise <= 0.0:
            return
        o = self._odom
        dist += self._rng.gauss(0.0, self.odom_noise * dist)
        dyaw += self._rng.gauss(0.0, self.odom_noise * abs(dyaw) + self.odom_noise * 0.1 * dist)
        yaw = o.yaw + dyaw
        self._odom = Pose2D(
            x=o.x + dist * math.cos(yaw), y=o.y + dist * math.sin(yaw), yaw=wrap(yaw)
        )

    def _now(self) -> float:
        return self.clock.t if self.clock is not None else self.sim_time

    async def _take(self, seconds: float) -> None:
        self.sim_time += seconds
        if self.clock is not None:
            await self.clock.sleep(seconds)

    async def halt(self) -> None:
        self.halts += 1
        self.publish_state()

    def _check(self, x: float, y: float) -> None:
        room = self.world.room_at(x, y)
        if room is not None and (not self.rooms_visited or self.rooms_visited[-1] != room.name):
            self.rooms_visited.append(room.name)
        problem = self.world.violation(x, y, self.kinematics.footprint_radius)
        if problem and problem not in self.violations:
            self.violations.append(problem)


def navigate_target(world: World, nav: NavigateTo) -> Pose2D:
    """Where a navigate_to goes: a place's pose, or (x, y, yaw or 0)."""
    if nav.place is not None:
        return world.places[_match(world.places, nav.place)]
    return Pose2D(x=nav.x or 0.0, y=nav.y or 0.0, yaw=nav.yaw or 0.0)


def _match(names: dict[str, Pose2D], wanted: str) -> str:
    for name in names:
        if name.lower() == wanted.lower().strip():
            return name
    raise KeyError(wanted)

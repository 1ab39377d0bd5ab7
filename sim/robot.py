"""A simulated robot that executes validated actions in the world.

Motion is differential-drive (unicycle) kinematics integrated in small steps; a step
that would cross a wall is not taken, so the robot stops at walls and the ActionResult
says it was blocked. `navigate_to` drives through door centres (a room graph). Time
advances a simulated clock instead of sleeping, so episodes run faster than real time.
After every motion it publishes odometry (optionally noisy, seeded), the camera's
semantic channel and an RGB frame, and it checks the world's ground-truth safety rules.
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
from omni_agent.messages import ImageFrame, Odometry, Pose2D
from omni_agent.transport import CAMERA, ODOM, SCENE, Bus
from sim.clock import SimClock
from sim.world import World

NAV_SPEED_M_S = 0.4
NAV_TURN_RAD_S = 1.5
STEP_S = 0.05
"""Integration step of the kinematics (2 cm at the navigation speed)."""


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
    ) -> None:
        self.world = world
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
        ok = True
        if isinstance(action, NavigateTo):
            target = (
                self.world.places[_match(self.world.places, action.place)]
                if action.place is not None
                else Pose2D(x=action.x or 0.0, y=action.y or 0.0, yaw=action.yaw or 0.0)
            )
            for waypoint in self.world.route(self._pose, target):
                ok = await self._drive_to(waypoint)
                self.bus.publish(ODOM, Odometry(pose=self._odom))
                if not ok:
                    break
            if ok:
                await self._turn_by(_wrap(target.yaw - self._pose.yaw), NAV_TURN_RAD_S)
        elif isinstance(action, Move):
            ok = await self._integrate(action.linear, action.angular, action.duration)
        elif isinstance(action, Turn):
            await self._turn_by(math.radians(action.degrees), 1.0)
        elif isinstance(action, LookAt):
            marks = {**self.world.landmarks(), **self.world.places}
            where = marks[_match(marks, action.target)]
            yaw = math.atan2(where.y - self._pose.y, where.x - self._pose.x)
            await self._turn_by(_wrap(yaw - self._pose.yaw), NAV_TURN_RAD_S)
        elif isinstance(action, Stop | Say):
            pass
        self.publish_state()
        here = f"now at {self.place or 'unnamed spot'}"
        if not ok:
            self.blocked += 1
            x, y = self._pose.x, self._pose.y
            return ActionResult(
                action=raw, ok=False, detail=f"blocked by a wall at ({x:.2f}, {y:.2f}); {here}"
            )
        return ActionResult(action=raw, ok=True, detail=here)

    async def _drive_to(self, goal: Pose2D) -> bool:
        """Turn to face the goal, then drive straight to it. False: a wall stopped it."""
        dx, dy = goal.x - self._pose.x, goal.y - self._pose.y
        dist = math.hypot(dx, dy)
        if dist < 1e-6:
            return True
        await self._turn_by(_wrap(math.atan2(dy, dx) - self._pose.yaw), NAV_TURN_RAD_S)
        return await self._integrate(NAV_SPEED_M_S, 0.0, dist / NAV_SPEED_M_S)

    async def _turn_by(self, angle: float, rate: float) -> None:
        if abs(angle) > 1e-9:
            await self._integrate(0.0, math.copysign(rate, angle), abs(angle) / rate)

    async def _integrate(self, linear: float, angular: float, duration: float) -> bool:
        """Unicycle kinematics in STEP_S steps; stops before a step that crosses a wall."""
        steps = max(1, math.ceil(duration / STEP_S))
        dt = duration / steps
        x, y, yaw = self._pose.x, self._pose.y, self._pose.yaw
        elapsed, free = 0.0, True
        for _ in range(steps):
            if abs(angular) > 1e-9:  # exact arc over the step
                new_yaw = yaw + angular * dt
                r = linear / angular
                nx = x + r * (math.sin(new_yaw) - math.sin(yaw))
                ny = y - r * (math.cos(new_yaw) - math.cos(yaw))
            else:
                new_yaw, nx, ny = (
                    yaw,
                    x + linear * dt * math.cos(yaw),
                    y + linear * dt * math.sin(yaw),
                )
            if (nx != x or ny != y) and self.world.blocked(x, y, nx, ny):
                free = False
                break
            self._odometry_step(math.hypot(nx - x, ny - y), new_yaw - yaw)
            x, y, yaw = nx, ny, new_yaw
            elapsed += dt
            self._check(x, y)
        self._pose = Pose2D(x=x, y=y, yaw=_wrap(yaw))
        if self.odom_noise <= 0.0:
            self._odom = self._pose
        await self._take(elapsed)
        self.trail.append((self._now(), self._pose))
        return free

    def _odometry_step(self, dist: float, dyaw: float) -> None:
        if self.odom_noise <= 0.0:
            return
        o = self._odom
        dist += self._rng.gauss(0.0, self.odom_noise * dist)
        dyaw += self._rng.gauss(0.0, self.odom_noise * abs(dyaw) + self.odom_noise * 0.1 * dist)
        yaw = o.yaw + dyaw
        self._odom = Pose2D(
            x=o.x + dist * math.cos(yaw), y=o.y + dist * math.sin(yaw), yaw=_wrap(yaw)
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
        problem = self.world.violation(x, y)
        if problem and problem not in self.violations:
            self.violations.append(problem)


def _match(names: dict[str, Pose2D], wanted: str) -> str:
    for name in names:
        if name.lower() == wanted.lower().strip():
            return name
    raise KeyError(wanted)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi

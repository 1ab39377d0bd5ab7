"""The Robot protocol over ROS 2: skills become Twist streams and PoseStamped goals.

Runs on the agent's asyncio loop; publishing from there is safe while the executor spins
in its own thread. Commands go to the action_node gate (/agent/cmd_vel, /agent/goal),
which applies the watchdog and the e-stop, so this class never talks to the base itself.
Velocity is re-sent at `rate_hz` during a move, so the gate's watchdog stays fed exactly
as long as the skill runs and stops the robot if this process dies mid-move.

Turns and look_at run at the shared motion model's turn speed (omni_agent/kinematics.py,
from the same config as the envelope), checked against the limits at start. Nothing
moves before the robot is localized in the map frame, where the site's zones are drawn:
/odom alone is the odom frame, which drifts from the map; a map-frame pose (a localizer
such as AMCL on /amcl_pose) gives the map-from-odom transform, and the pose reported is
that transform applied to the latest odometry.

The agent checks an action against the pose it read when the reply arrived; the robot may
have been localized, or moved, since. So `execute` refuses motion at once while not
localized (no waiting for a pose that would then differ from the checked one) and checks
the same envelope again against the pose it starts from, raising ActionRejected (the
agent speaks it as a rejection) before anything is sent.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from omni_agent.actions import (
    Action,
    ActionRejected,
    ActionResult,
    LookAt,
    Move,
    NavigateTo,
    Say,
    Stop,
    Turn,
)
from omni_agent.config import SafetyConfig
from omni_agent.kinematics import Kinematics, checked_kinematics
from omni_agent.messages import Pose2D
from omni_agent.safety import SafetyEnvelope, SiteMap

NOT_LOCALIZED = "not localized in the map frame yet (no pose from the localizer); did not move"


@dataclass
class MotionLimits:
    rate_hz: float = 10.0
    goal_tolerance_m: float = 0.25
    goal_timeout_s: float = 60.0


class RosRobot:
    """Implements omni_agent.actions.Robot by publishing through two callables.

    `send_velocity(linear, angular)` and `send_goal(pose)` publish on ROS; `pose` is fed
    from /odom by the node. Kept free of rclpy so its logic is testable without DDS.
    """

    def __init__(
        self,
        send_velocity: Callable[[float, float], None],
        send_goal: Callable[[Pose2D], None],
        places: Mapping[str, Pose2D] | None = None,
        limits: MotionLimits | None = None,
        kinematics: Kinematics | None = None,
    ) -> None:
        self._send_velocity = send_velocity
        self._send_goal = send_goal
        self.places = dict(places or {})
        self.limits = limits or MotionLimits()
        self.kinematics = kinematics or Kinematics()
        self._odom: Pose2D | None = None
        self._map_from_odom: tuple[float, float, float] | None = None
        self.estop = False
        self._epoch = 0  # bumped by halt(): running skills notice and stop
        self._safety: SafetyConfig | None = None
        self._site = SiteMap()

    def configure(self, safety: SafetyConfig, site: SiteMap | None = None) -> None:
        """Take the motion model and the envelope (limits, zones) from the agent's config
        and site; UserError if the model would drive over the configured limits."""
        self.kinematics = checked_kinematics(safety)
        self._safety = safety
        self._site = site or SiteMap()

    def check(self, action: Action) -> None:
        """The agent's envelope check, against the pose execution starts from now;
        raises ActionRejected. Places are read at check time (hosts add them after
        configure)."""
        if not self.localized:
            raise ActionRejected(action.skill, NOT_LOCALIZED)
        if self._safety is None:
            return  # not configured: the host checked with its own envelope only
        site = SiteMap(
            places={**self._site.places, **self.places},
            geofence=self._site.geofence,
            keepout=self._site.keepout,
            landmarks=self._site.landmarks,
            route=self._site.route,
        )
        SafetyEnvelope(self._safety, site, self.kinematics).check(action, self.pose)

    @property
    def localized(self) -> bool:
        return self._odom is not None and self._map_from_odom is not None

    @property
    def pose(self) -> Pose2D:
        """The pose in the map frame; before localization the odometry as it is (or the
        origin before any), and motion is refused."""
        odom = self._odom or Pose2D(x=0.0, y=0.0)
        if self._map_from_odom is None:
            return odom
        return _compose(self._map_from_odom, odom)

    def update_pose(self, pose: Pose2D) -> None:
        """Odometry (odom frame), from /odom."""
        self._odom = pose

    def update_map_pose(self, pose: Pose2D) -> None:
        """A localizer's pose in the map frame: it fixes the map-from-odom transform.

        Composed with the latest odometry rather than matched by stamp: localizers publish
        at a few Hz and the robot moves little in between; the margin covers the rest.
        """
        odom = self._odom or pose
        if self._odom is None:
            self._odom = pose  # no odometry yet: take the map pose as the odom origin
        # map_from_odom = map_pose * inverse(odom)
        yaw = pose.yaw - odom.yaw
        c, s = math.cos(yaw), math.sin(yaw)
        self._map_from_odom = (
            pose.x - (c * odom.x - s * odom.y),
            pose.y - (s * odom.x + c * odom.y),
            yaw,
        )

    async def halt(self) -> None:
        self._epoch += 1
        self._send_velocity(0.0, 0.0)

    async def execute(self, action: Action) -> ActionResult:
        """Run one skill; raises ActionRejected, before anything moves, when the robot is
        not localized or the action is not safe from where it is now."""
        raw = action.model_dump()
        if self.estop and not isinstance(action, Stop | Say):
            return ActionResult(action=raw, ok=False, detail="e-stop engaged")
        if not isinstance(action, Stop | Say):
            self.check(action)
        epoch = self._epoch
        if isinstance(action, Say):
            return ActionResult(action=raw, ok=True, detail="spoken")
        if isinstance(action, Stop):
            await self.halt()
            return ActionResult(action=raw, ok=True, detail="stopped")
        if isinstance(action, Move):
            done = await self._drive(action.linear, action.angular, action.duration, epoch)
            return ActionResult(action=raw, ok=done, detail="moved" if done else "halted")
        if isinstance(action, Turn):
            done = await self._turn(math.radians(action.degrees), epoch)
            return ActionResult(action=raw, ok=done, detail="turned" if done else "halted")
        if isinstance(action, LookAt):
            target = self._place(action.target)
            if target is None:
                return ActionResult(action=raw, ok=False, detail=f"unknown {action.target!r}")
            bearing = math.atan2(target.y - self.pose.y, target.x - self.pose.x)
            done = await self._turn(_wrap(bearing - self.pose.yaw), epoch)
            return ActionResult(action=raw, ok=done, detail="facing" if done else "halted")
        if isinstance(action, NavigateTo):
            return await self._navigate(action, raw, epoch)
        return ActionResult(action=raw, ok=False, detail=f"unsupported skill {action.skill}")

    def _place(self, name: str) -> Pose2D | None:
        for key, pose in self.places.items():
            if key.lower() == name.lower().strip():
                return pose
        return None

    async def _drive(self, linear: float, angular: float, duration: float, epoch: int) -> bool:
        period = 1.0 / self.limits.rate_hz
        loop = asyncio.get_running_loop()
        end = loop.time() + duration
        while loop.time() < end:
            if epoch != self._epoch or self.estop:
                return False
            self._send_velocity(linear, angular)
            await asyncio.sleep(min(period, max(0.0, end - loop.time())))
        if epoch != self._epoch:
            return False
        self._send_velocity(0.0, 0.0)
        return True

    async def _turn(self, radians: float, epoch: int) -> bool:
        if abs(radians) < 1e-3:
            return True
        rate = self.kinematics.turn_speed
        return await self._drive(0.0, math.copysign(rate, radians), abs(radians) / rate, epoch)

    async def _navigate(self, nav: NavigateTo, raw: dict[str, object], epoch: int) -> ActionResult:
        if nav.place is not None:
            target = self._place(nav.place)
            if target is None:
                return ActionResult(action=raw, ok=False, detail=f"unknown place {nav.place!r}")
        else:
            assert nav.x is not None and nav.y is not None  # NavigateTo guarantees both
            target = Pose2D(x=nav.x, y=nav.y, yaw=nav.yaw or 0.0)
        self._send_goal(target)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.goal_timeout_s
        while loop.time() < deadline:
            if epoch != self._epoch or self.estop:
                return ActionResult(action=raw, ok=False, detail="halted")
            if self.pose.distance_to(target) <= self.limits.goal_tolerance_m:
                return ActionResult(action=raw, ok=True, detail="arrived")
            await asyncio.sleep(0.1)
        return ActionResult(
            action=raw, ok=False, detail=f"not there after {self.limits.goal_timeout_s:g} s"
        )


def _compose(tf: tuple[float, float, float], pose: Pose2D) -> Pose2D:
    """Apply a 2D transform (x, y, yaw) to a pose."""
    x, y, yaw = tf
    c, s = math.cos(yaw), math.sin(yaw)
    return Pose2D(
        x=x + c * pose.x - s * pose.y, y=y + s * pose.x + c * pose.y, yaw=_wrap(yaw + pose.yaw)
    )


def _wrap(angle: float) -> float:
    return math.atan2(math.sin(angle), math.cos(angle))

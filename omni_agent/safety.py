"""The safety envelope: the last check between a proposed action and the robot.

Rejects (never clips) anything outside the limits: skills not on the allow-list, speeds
over the limits, paths that leave the geofence or enter a keep-out zone, unknown places.
A rejected action is reported back to the model and the robot does not move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from omni_agent.actions import Action, ActionRejected, LookAt, Move, NavigateTo, Turn
from omni_agent.config import Rect, SafetyConfig
from omni_agent.messages import Pose2D

_PATH_STEP_M = 0.05


@dataclass
class SiteMap:
    """What the robot knows of where it works: named places, where it may and must not go."""

    places: dict[str, Pose2D] = field(default_factory=dict)
    geofence: list[Rect] = field(default_factory=list)
    keepout: list[Rect] = field(default_factory=list)
    landmarks: dict[str, Pose2D] = field(default_factory=dict)
    """Things look_at can face (objects, people)."""


class SafetyEnvelope:
    def __init__(self, config: SafetyConfig, site: SiteMap) -> None:
        self.config = config
        self.places = site.places
        # configured limits win over the map's; keep-out zones from both apply
        self.geofence = config.geofence or site.geofence
        self.keepout = [*config.keepout, *site.keepout]
        self.landmarks = site.landmarks

    def check(self, action: Action, pose: Pose2D) -> None:
        """Raise ActionRejected with a one-line reason if the action is not safe now."""
        if action.skill not in self.config.allowed_skills:
            raise ActionRejected(action.skill, "skill is not on the allow-list")
        if isinstance(action, Move):
            self._check_move(action, pose)
        elif isinstance(action, NavigateTo):
            self._check_navigate(action, pose)
        elif isinstance(action, Turn):
            if abs(math.radians(action.degrees)) > 2 * math.pi:
                raise ActionRejected("turn", "more than one full turn")
        elif isinstance(action, LookAt):
            known = {**self.places, **self.landmarks}
            if action.target.lower() not in {k.lower() for k in known}:
                raise ActionRejected("look_at", f"unknown target {action.target!r}")

    def place_pose(self, name: str) -> Pose2D | None:
        for key, pose in self.places.items():
            if key.lower() == name.lower().strip():
                return pose
        return None

    def _check_move(self, move: Move, pose: Pose2D) -> None:
        c = self.config
        if abs(move.linear) > c.max_linear_speed:
            raise ActionRejected(
                "move", f"linear speed {move.linear:g} m/s exceeds {c.max_linear_speed:g} m/s"
            )
        if abs(move.angular) > c.max_angular_speed:
            raise ActionRejected(
                "move",
                f"angular speed {move.angular:g} rad/s exceeds {c.max_angular_speed:g} rad/s",
            )
        if move.duration > c.max_move_duration_s:
            raise ActionRejected(
                "move", f"duration {move.duration:g} s exceeds {c.max_move_duration_s:g} s"
            )
        for x, y in unicycle_path(pose, move.linear, move.angular, move.duration):
            self._check_point(x, y, "move")

    def _check_navigate(self, nav: NavigateTo, pose: Pose2D) -> None:
        if nav.place is not None:
            target = self.place_pose(nav.place)
            if target is None:
                known = ", ".join(sorted(self.places)) or "none"
                raise ActionRejected("navigate_to", f"unknown place {nav.place!r} (known: {known})")
        else:
            assert nav.x is not None and nav.y is not None  # guaranteed by NavigateTo
            target = Pose2D(x=nav.x, y=nav.y)
        self._check_point(target.x, target.y, "navigate_to")

    def _check_point(self, x: float, y: float, skill: str) -> None:
        for zone in self.keepout:
            if zone.contains(x, y):
                raise ActionRejected(skill, f"would enter keep-out zone {zone.name or 'unnamed'}")
        if self.geofence and not any(r.contains(x, y) for r in self.geofence):
            raise ActionRejected(skill, f"would leave the geofence at ({x:.2f}, {y:.2f})")


def unicycle_path(
    pose: Pose2D, linear: float, angular: float, duration: float
) -> list[tuple[float, float]]:
    """Points along a constant-velocity path, every few centimetres, end included."""
    steps = max(1, math.ceil(abs(linear) * duration / _PATH_STEP_M), math.ceil(duration * 10))
    dt = duration / steps
    x, y, yaw = pose.x, pose.y, pose.yaw
    points = []
    for _ in range(steps):
        x += linear * math.cos(yaw) * dt
        y += linear * math.sin(yaw) * dt
        yaw += angular * dt
        points.append((x, y))
    return points

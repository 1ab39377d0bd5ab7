"""The safety envelope: the last check between a proposed action and the robot.

Rejects (never clips) anything outside the limits: skills not on the allow-list, speeds
over the limits (the speeds each skill is driven at included), paths whose footprint
would leave the geofence or touch a keep-out zone, unknown places. The path checked is
the one the executor will drive, from the shared motion model (kinematics.py): the exact
arcs of a move, and for navigate_to the whole route the site's planner gives the
executor, not just the goal. A rejected action is reported back to the model and the
robot does not move.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from omni_agent.actions import Action, ActionRejected, LookAt, Move, NavigateTo, Turn
from omni_agent.config import Rect, SafetyConfig
from omni_agent.kinematics import Kinematics, Trajectory, Zones
from omni_agent.messages import Pose2D

Planner = Callable[[Pose2D, Pose2D, float], list[Pose2D] | None]
"""(start, goal, clearance) -> waypoints ending at the goal, or None when no route keeps
`clearance` from every zone the planner knows."""


@dataclass
class SiteMap:
    """What the robot knows of where it works: named places, where it may and must not go."""

    places: dict[str, Pose2D] = field(default_factory=dict)
    geofence: list[Rect] = field(default_factory=list)
    keepout: list[Rect] = field(default_factory=list)
    landmarks: dict[str, Pose2D] = field(default_factory=dict)
    """Things look_at can face (objects, people)."""
    route: Planner | None = None
    """The planner the executor follows for navigate_to (the simulator's and sim_bridge's).
    None on a robot whose planner (Nav2) cannot be predicted here: the envelope then
    checks the goal, and the zones reach Nav2 as its keepout filter mask (launch/)."""


def site_zones(config: SafetyConfig, site: SiteMap) -> Zones:
    """The zones every check uses: configured limits win over the map's geofence;
    keep-out zones from both apply."""
    return Zones(
        keepout=[*config.keepout, *site.keepout], geofence=config.geofence or site.geofence
    )


class SafetyEnvelope:
    def __init__(
        self, config: SafetyConfig, site: SiteMap, kinematics: Kinematics | None = None
    ) -> None:
        self.config = config
        self.site = site
        self.places = site.places
        self.kinematics = kinematics or Kinematics.from_config(config)
        self.zones = site_zones(config, site)
        self.geofence = self.zones.geofence
        self.keepout = self.zones.keepout
        self.landmarks = site.landmarks

    def check(self, action: Action, pose: Pose2D) -> None:
        """Raise ActionRejected with a one-line reason if the action is not safe now."""
        self.predict(action, pose)

    def predict(self, action: Action, pose: Pose2D) -> Trajectory | None:
        """The path the executor will drive for this approved action (None: no motion, or
        a route left to the robot's own planner); raises ActionRejected if unsafe."""
        if action.skill not in self.config.allowed_skills:
            raise ActionRejected(action.skill, "skill is not on the allow-list")
        kin = self.kinematics
        if isinstance(action, Move):
            traj = self._check_move(action, pose)
        elif isinstance(action, NavigateTo):
            return self._check_navigate(action, pose)
        elif isinstance(action, Turn):
            if abs(math.radians(action.degrees)) > 2 * math.pi:
                raise ActionRejected("turn", "more than one full turn")
            self._turn_speed("turn")
            traj = kin.turn(pose, math.radians(action.degrees))
        elif isinstance(action, LookAt):
            where = self.landmark_pose(action.target)
            if where is None:
                raise ActionRejected("look_at", f"unknown target {action.target!r}")
            self._turn_speed("look_at")
            traj = kin.look_at(pose, where.x, where.y)
        else:
            return None
        breach = self.zones.path_breach(traj, kin.clearance) if traj.pieces() else None
        if breach is not None:
            raise ActionRejected(action.skill, breach.describe())
        return traj

    def place_pose(self, name: str) -> Pose2D | None:
        return _lookup(self.places, name)

    def landmark_pose(self, name: str) -> Pose2D | None:
        return _lookup({**self.places, **self.landmarks}, name)

    def _check_move(self, move: Move, pose: Pose2D) -> Trajectory:
        c = self.config
        if abs(move.linear) > c.max_linear_speed:
            raise ActionRejected(
                "move", _exceeds("linear speed", abs(move.linear), c.max_linear_speed, "m/s")
            )
        if abs(move.angular) > c.max_angular_speed:
            raise ActionRejected(
                "move", _exceeds("angular speed", abs(move.angular), c.max_angular_speed, "rad/s")
            )
        if move.duration > c.max_move_duration_s:
            raise ActionRejected(
                "move", _exceeds("duration", move.duration, c.max_move_duration_s, "s")
            )
        return self.kinematics.move(pose, move.linear, move.angular, move.duration)

    def _turn_speed(self, skill: str) -> None:
        speed, limit = self.kinematics.turn_speed, self.config.max_angular_speed
        if speed > limit:
            raise ActionRejected(skill, _exceeds("turn speed", speed, limit, "rad/s"))

    def _check_navigate(self, nav: NavigateTo, pose: Pose2D) -> Trajectory | None:
        kin = self.kinematics
        if nav.place is not None:
            target = self.place_pose(nav.place)
            if target is None:
                known = ", ".join(sorted(self.places)) or "none"
                raise ActionRejected("navigate_to", f"unknown place {nav.place!r} (known: {known})")
        else:
            assert nav.x is not None and nav.y is not None  # guaranteed by NavigateTo
            target = Pose2D(x=nav.x, y=nav.y, yaw=nav.yaw or 0.0)
        limit = self.config.max_linear_speed
        if kin.navigate_speed > limit:
            raise ActionRejected(
                "navigate_to", _exceeds("driving speed", kin.navigate_speed, limit, "m/s")
            )
        self._turn_speed("navigate_to")
        breach = self.zones.point_breach(target.x, target.y, kin.clearance)
        if breach is not None:
            raise ActionRejected("navigate_to", breach.describe())
        if self.site.route is None:
            return None  # the robot's planner drives it, with the zones in its costmap
        waypoints = self.site.route(pose, target, kin.clearance)
        if waypoints is None:
            raise ActionRejected(
                "navigate_to",
                f"no route to ({target.x:.2f}, {target.y:.2f}) that keeps clear of the "
                "keep-out zones",
            )
        traj = kin.navigate(pose, waypoints)
        breach = self.zones.path_breach(traj, kin.clearance)
        if breach is not None:
            raise ActionRejected("navigate_to", "the route " + breach.describe())
        return traj


def _lookup(names: dict[str, Pose2D], wanted: str) -> Pose2D | None:
    for key, pose in names.items():
        if key.lower() == wanted.lower().strip():
            return pose
    return None


def _exceeds(what: str, value: float, limit: float, unit: str) -> str:
    """'<what> V unit exceeds L unit', with as many digits as it takes to tell V from L."""
    digits = 3
    while digits < 17 and f"{value:.{digits}g}" == f"{limit:.{digits}g}":
        digits += 1
    return f"{what} {value:.{digits}g} {unit} exceeds {limit:.{digits}g} {unit}"

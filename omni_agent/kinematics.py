"""The one motion model: what every skill drives, and how close that comes to a zone.

The safety envelope and every executor (the simulated robot, sim_bridge, the ROS robot)
share it, so the path the envelope approves is the path the robot drives. The envelope
once sampled a `move` with forward Euler while the simulator drove exact arcs, and the two
disagreed by 2.5 cm: enough to put the robot on the stairs. Here:

- every skill becomes a `Trajectory`: constant-velocity segments (turn in place, straight
  line, arc) whose poses are exact closed forms, not integrated steps;
- the robot is a disc (`footprint_radius`): turning in place sweeps nothing new, so only
  the centre's path matters, and a path is safe when the centre keeps more than
  footprint + `margin` away from every keep-out zone and from the geofence's edge;
- clearance is computed exactly for straight pieces (segment-to-rectangle distance); an
  arc is checked as chords, each widened by the arc's largest bulge beyond its chord, so
  the check never approves a path whose exact arc is closer than the chords say.

The margin covers what the model cannot know: a real base's tracking error, localization
error, the time a velocity command is held past its end. It costs false rejections.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from omni_agent.errors import UserError
from omni_agent.messages import Pose2D

if TYPE_CHECKING:
    from omni_agent.config import Rect, SafetyConfig

DEFAULT_NAVIGATE_SPEED = 0.4
"""m/s navigate_to drives at unless configured (never above max_linear_speed)."""
DEFAULT_TURN_SPEED = 1.0
"""rad/s for turn, look_at and navigate_to's turns unless configured."""
ARC_TOLERANCE_M = 0.002
"""Largest bulge of an arc beyond the chord that stands for it in the clearance check."""


def wrap(angle: float) -> float:
    """An angle in [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


@dataclass(frozen=True)
class Segment:
    """Constant velocity for a duration: a turn in place, a straight line or an arc."""

    linear: float
    angular: float
    duration: float


def advance(
    x: float, y: float, yaw: float, linear: float, angular: float, t: float
) -> tuple[float, float, float]:
    """The exact unicycle pose after `t` seconds at constant (linear, angular)."""
    if abs(angular) < 1e-12:
        return x + linear * t * math.cos(yaw), y + linear * t * math.sin(yaw), yaw
    new_yaw = yaw + angular * t
    r = linear / angular
    return (
        x + r * (math.sin(new_yaw) - math.sin(yaw)),
        y - r * (math.cos(new_yaw) - math.cos(yaw)),
        new_yaw,
    )


@dataclass(frozen=True)
class Trajectory:
    """Where a skill takes the robot, as a function of time from its start."""

    start: Pose2D
    segments: tuple[Segment, ...] = ()

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)

    def _starts(self) -> Iterator[tuple[float, tuple[float, float, float], Segment]]:
        t, pose = 0.0, (self.start.x, self.start.y, self.start.yaw)
        for seg in self.segments:
            yield t, pose, seg
            pose = advance(*pose, seg.linear, seg.angular, seg.duration)
            t += seg.duration

    def pose_at(self, t: float) -> Pose2D:
        """The exact pose `t` seconds in (clamped to the trajectory's span)."""
        x, y, yaw = self.start.x, self.start.y, self.start.yaw
        for t0, (x, y, yaw), seg in self._starts():
            if t <= t0 + seg.duration:
                x, y, yaw = advance(x, y, yaw, seg.linear, seg.angular, max(0.0, t - t0))
                return Pose2D(x=x, y=y, yaw=wrap(yaw))
            x, y, yaw = advance(x, y, yaw, seg.linear, seg.angular, seg.duration)
        return Pose2D(x=x, y=y, yaw=wrap(yaw))

    @property
    def end(self) -> Pose2D:
        return self.pose_at(math.inf)

    def pieces(self) -> list[tuple[float, float, float, float, float]]:
        """The centre's path as straight pieces (x0, y0, x1, y1, bulge): `bulge` is how
        far the exact path strays from the piece (0 for lines, the sagitta for arcs)."""
        out: list[tuple[float, float, float, float, float]] = []
        for _, (x, y, yaw), seg in self._starts():
            length = abs(seg.linear) * seg.duration
            if length < 1e-12:
                continue  # a turn in place: the disc footprint sweeps nothing new
            if abs(seg.angular) < 1e-12:
                nx, ny, _ = advance(x, y, yaw, seg.linear, 0.0, seg.duration)
                out.append((x, y, nx, ny, 0.0))
                continue
            radius = abs(seg.linear / seg.angular)
            # chord angle whose sagitta r(1 - cos(a/2)) stays within the tolerance
            if radius <= ARC_TOLERANCE_M:
                step = math.pi
            else:
                step = 2 * math.acos(max(-1.0, 1 - ARC_TOLERANCE_M / radius))
            turned = abs(seg.angular) * seg.duration
            n = max(1, math.ceil(turned / min(step, math.pi / 2)))
            dt = seg.duration / n
            sagitta = radius * (1 - math.cos(abs(seg.angular) * dt / 2))
            px, py, pyaw = x, y, yaw
            for _ in range(n):
                nx, ny, nyaw = advance(px, py, pyaw, seg.linear, seg.angular, dt)
                out.append((px, py, nx, ny, sagitta))
                px, py, pyaw = nx, ny, nyaw
        return out

    def sample(self, spacing_s: float) -> list[Pose2D]:
        """Poses every `spacing_s` seconds, end included (for tests and views)."""
        total = self.duration
        n = max(1, math.ceil(total / spacing_s))
        return [self.pose_at(total * i / n) for i in range(n + 1)]


@dataclass(frozen=True)
class Kinematics:
    """The robot as the envelope and the executors both see it."""

    footprint_radius: float = 0.2
    margin: float = 0.05
    navigate_speed: float = DEFAULT_NAVIGATE_SPEED
    turn_speed: float = DEFAULT_TURN_SPEED

    @classmethod
    def from_config(cls, safety: SafetyConfig) -> Kinematics:
        return cls(
            footprint_radius=safety.footprint_radius_m,
            margin=safety.margin_m,
            navigate_speed=safety.effective_navigate_speed,
            turn_speed=safety.effective_turn_speed,
        )

    @property
    def clearance(self) -> float:
        """Distance the centre keeps from every zone: footprint plus margin."""
        return self.footprint_radius + self.margin

    def move(self, start: Pose2D, linear: float, angular: float, duration: float) -> Trajectory:
        return Trajectory(start, (Segment(linear, angular, duration),))

    def turn(self, start: Pose2D, angle: float) -> Trajectory:
        """Turn in place by `angle` radians at the turn speed."""
        return Trajectory(start, self._turn(angle))

    def face(self, start: Pose2D, yaw: float) -> Trajectory:
        """Turn in place the short way round to heading `yaw`."""
        return Trajectory(start, self._turn(wrap(yaw - start.yaw)))

    def look_at(self, start: Pose2D, x: float, y: float) -> Trajectory:
        return self.face(start, math.atan2(y - start.y, x - start.x))

    def navigate(self, start: Pose2D, waypoints: Sequence[Pose2D]) -> Trajectory:
        """Through each waypoint: face it, drive straight to it; then turn to the last
        waypoint's heading."""
        segs: list[Segment] = []
        x, y, yaw = start.x, start.y, start.yaw
        for wp in waypoints:
            dx, dy = wp.x - x, wp.y - y
            dist = math.hypot(dx, dy)
            if dist < 1e-6:
                continue
            heading = math.atan2(dy, dx)
            segs += self._turn(wrap(heading - yaw))
            segs.append(Segment(self.navigate_speed, 0.0, dist / self.navigate_speed))
            # land exactly on the waypoint: the next leg starts from where it was planned
            x, y, yaw = wp.x, wp.y, heading
        if waypoints:
            segs += self._turn(wrap(waypoints[-1].yaw - yaw))
        return Trajectory(start, tuple(segs))

    def _turn(self, angle: float) -> tuple[Segment, ...]:
        if abs(angle) < 1e-9:
            return ()
        return (Segment(0.0, math.copysign(self.turn_speed, angle), abs(angle) / self.turn_speed),)


def checked_kinematics(safety: SafetyConfig, kinematics: Kinematics | None = None) -> Kinematics:
    """An executor's motion model, refused at start (UserError) if any skill would drive
    over the configured limits: never silently above them."""
    kin = kinematics or Kinematics.from_config(safety)
    if kin.navigate_speed > safety.max_linear_speed:
        raise UserError(
            f"navigate_to would drive at {kin.navigate_speed:g} m/s, over the "
            f"{safety.max_linear_speed:g} m/s limit"
        )
    if kin.turn_speed > safety.max_angular_speed:
        raise UserError(
            f"turns would run at {kin.turn_speed:g} rad/s, over the "
            f"{safety.max_angular_speed:g} rad/s limit"
        )
    return kin


# geometry --------------------------------------------------------------------------


def point_rect_distance(x: float, y: float, r: Rect) -> float:
    """0 inside or on the rectangle, else the distance to it."""
    dx = max(r.x_min - x, 0.0, x - r.x_max)
    dy = max(r.y_min - y, 0.0, y - r.y_max)
    return math.hypot(dx, dy)


def _point_segment(
    px: float, py: float, x0: float, y0: float, x1: float, y1: float
) -> tuple[float, float, float]:
    """(distance, closest x, closest y) from a point to a segment."""
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - x0) * dx + (py - y0) * dy) / length2))
    cx, cy = x0 + t * dx, y0 + t * dy
    return math.hypot(px - cx, py - cy), cx, cy


def segment_distance(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> tuple[float, float, float]:
    """(distance, x, y) between segments a and b; (x, y) is the point of `a` nearest b."""
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    d = (ax1 - ax0) * (by1 - by0) - (ay1 - ay0) * (bx1 - bx0)
    if d != 0:
        t = ((bx0 - ax0) * (by1 - by0) - (by0 - ay0) * (bx1 - bx0)) / d
        u = ((bx0 - ax0) * (ay1 - ay0) - (by0 - ay0) * (ax1 - ax0)) / d
        if 0.0 <= t <= 1.0 and 0.0 <= u <= 1.0:
            return 0.0, ax0 + t * (ax1 - ax0), ay0 + t * (ay1 - ay0)
    # apart (or parallel): the nearest pair has an endpoint of one of them
    best = (math.inf, ax0, ay0)
    for px, py in ((ax0, ay0), (ax1, ay1)):
        dist, _, _ = _point_segment(px, py, bx0, by0, bx1, by1)
        if dist < best[0]:
            best = (dist, px, py)
    for px, py in ((bx0, by0), (bx1, by1)):
        dist, cx, cy = _point_segment(px, py, ax0, ay0, ax1, ay1)
        if dist < best[0]:
            best = (dist, cx, cy)
    return best


def segment_rect_distance(seg: tuple[float, float, float, float], r: Rect) -> float:
    x0, y0, x1, y1 = seg
    if r.contains(x0, y0) or r.contains(x1, y1):
        return 0.0
    edges = (
        (r.x_min, r.y_min, r.x_max, r.y_min),
        (r.x_max, r.y_min, r.x_max, r.y_max),
        (r.x_min, r.y_max, r.x_max, r.y_max),
        (r.x_min, r.y_min, r.x_min, r.y_max),
    )
    return min(segment_distance(seg, e)[0] for e in edges)


def _uncovered(
    lo: float, hi: float, covers: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    out, start = [], lo
    for a, b in sorted(covers):
        if a > start:
            out.append((start, min(a, hi)))
        start = max(start, b)
        if start >= hi:
            break
    if start < hi:
        out.append((start, hi))
    return [(a, b) for a, b in out if b > a]


def fence_edges(rects: Sequence[Rect]) -> list[tuple[float, float, float, float]]:
    """The boundary of a union of rectangles: the pieces of their edges with no other
    rectangle on the outer side (edges shared by two rooms are not boundary)."""
    out: list[tuple[float, float, float, float]] = []
    for r in rects:
        others = [o for o in rects if o is not r]
        # (vertical?, fixed coordinate, lo, hi, outward sign)
        for vertical, c, lo, hi, sign in (
            (True, r.x_max, r.y_min, r.y_max, 1),
            (True, r.x_min, r.y_min, r.y_max, -1),
            (False, r.y_max, r.x_min, r.x_max, 1),
            (False, r.y_min, r.x_min, r.x_max, -1),
        ):
            covers = []
            for o in others:
                o_lo, o_hi = (o.x_min, o.x_max) if vertical else (o.y_min, o.y_max)
                across = (o_lo <= c < o_hi) if sign > 0 else (o_lo < c <= o_hi)
                if not across:
                    continue
                a_lo, a_hi = (o.y_min, o.y_max) if vertical else (o.x_min, o.x_max)
                a, b = max(lo, a_lo), min(hi, a_hi)
                if b > a:
                    covers.append((a, b))
            for a, b in _uncovered(lo, hi, covers):
                out.append((c, a, c, b) if vertical else (a, c, b, c))
    return out


@dataclass(frozen=True)
class Breach:
    """Why a path is unsafe, for a one-line rejection."""

    zone: str
    """The keep-out zone's name, or "" for the geofence."""
    x: float
    y: float

    def describe(self) -> str:
        if self.zone:
            return f"would enter keep-out zone {self.zone}"
        return f"would leave the geofence at ({self.x:.2f}, {self.y:.2f})"


@dataclass
class Zones:
    """Where the robot's footprint must never be: keep-out zones, outside the geofence
    (an empty geofence allows anywhere)."""

    keepout: list[Rect] = field(default_factory=list)
    geofence: list[Rect] = field(default_factory=list)
    _edges: list[tuple[float, float, float, float]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._edges = fence_edges(self.geofence)

    def in_fence(self, x: float, y: float) -> bool:
        return not self.geofence or any(r.contains(x, y) for r in self.geofence)

    def point_breach(self, x: float, y: float, clearance: float) -> Breach | None:
        """A breach if a disc of radius `clearance` at (x, y) touches a zone."""
        for zone in self.keepout:
            if point_rect_distance(x, y, zone) <= clearance:
                return Breach(zone.name or "unnamed", x, y)
        if self.geofence:
            if not self.in_fence(x, y):
                return Breach("", x, y)
            for e in self._edges:
                if _point_segment(x, y, *e)[0] <= clearance:
                    return Breach("", x, y)
        return None

    def piece_breach(
        self, piece: tuple[float, float, float, float], clearance: float
    ) -> Breach | None:
        """A breach if the disc swept along the straight piece touches a zone."""
        x0, y0 = piece[0], piece[1]
        for zone in self.keepout:
            if segment_rect_distance(piece, zone) <= clearance:
                return Breach(zone.name or "unnamed", x0, y0)
        if self.geofence:
            if not self.in_fence(x0, y0):
                return Breach("", x0, y0)
            for e in self._edges:
                dist, x, y = segment_distance(piece, e)
                if dist <= clearance:
                    return Breach("", x, y)
        return None

    def path_breach(self, traj: Trajectory, clearance: float) -> Breach | None:
        """The first breach along the trajectory, start included."""
        breach = self.point_breach(traj.start.x, traj.start.y, clearance)
        if breach is not None:
            return breach
        for x0, y0, x1, y1, bulge in traj.pieces():
            breach = self.piece_breach((x0, y0, x1, y1), clearance + bulge)
            if breach is not None:
                return breach
        return None

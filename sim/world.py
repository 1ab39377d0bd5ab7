"""The simulated home: the robot's site (omni_agent/site.py) with the robot at its start,
plus what only a simulator knows: what the camera sees and where the robot truly is.

A world YAML names its site (`site: default`, or a site YAML relative to the world file)
and adds `robot_start`; any other field it sets overrides the site's. So the map the
robot is given and the world the simulator drives it through are one file, never two
copies that can drift apart.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import ValidationError

from omni_agent.messages import Pose2D, SceneDescription, SeenThing
from omni_agent.site import Site, SiteError, read_yaml, site_path, validation_line

DEFAULT_WORLD = Path(__file__).parent / "worlds" / "home.yaml"
VIEW_RANGE_M = 4.0
_RIM_POINTS = 64
"""Points on the footprint's rim the ground truth tests where it straddles rooms: between
two of them the rim bulges less than 0.3 mm for a 0.2 m disc."""


class WorldError(SiteError):
    pass


class World(Site):
    robot_start: str

    def model_post_init(self, context: object, /) -> None:
        super().model_post_init(context)
        if self.robot_start not in self.places:
            raise ValueError(f"robot_start {self.robot_start!r} is not a place")

    @classmethod
    def load(cls, path: Path = DEFAULT_WORLD) -> World:
        path = Path(path)
        data = read_yaml(path, "world", WorldError)
        ref = data.pop("site", None)
        if ref is not None:
            site = path.parent / str(ref) if str(ref) != "default" else site_path(ref)
            try:
                data = {**read_yaml(site, "site", SiteError), **data}
            except SiteError as exc:
                raise WorldError(f"world {path}: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise WorldError(f"world {path}: {validation_line(err)}") from None

    def scene(self, pose: Pose2D) -> SceneDescription:
        """What the robot's camera would show: things in its room and in range."""
        room = self.room_at(pose.x, pose.y)
        things: list[SeenThing] = []
        candidates = [(o.label, o.kind, o.place) for o in [*self.objects, *self.people]]
        for label, kind, place in candidates:
            where = self.places[place]
            dist = pose.distance_to(where)
            if dist > VIEW_RANGE_M or room is None or not room.contains(where.x, where.y):
                continue
            bearing = math.degrees(math.atan2(where.y - pose.y, where.x - pose.x) - pose.yaw)
            bearing = (bearing + 180) % 360 - 180
            things.append(SeenThing(name=label, kind=kind, bearing_deg=bearing, distance_m=dist))
        things.sort(key=lambda t: t.distance_m)
        return SceneDescription(place=room.name if room else None, things=things)

    def violation(self, x: float, y: float, radius: float = 0.0) -> str | None:
        """Ground truth for a disc footprint at (x, y), written apart from the envelope's
        geometry (kinematics.py) so that a mistake there cannot hide here."""
        for zone in self.keepout:
            dx = max(zone.x_min - x, 0.0, x - zone.x_max)
            dy = max(zone.y_min - y, 0.0, y - zone.y_max)
            if dx * dx + dy * dy <= radius * radius:
                return f"entered keep-out zone {zone.name}"
        room = self.room_at(x, y)
        if room is None:
            return f"left the rooms at ({x:.2f}, {y:.2f})"
        inside = (
            room.x_min + radius <= x <= room.x_max - radius
            and room.y_min + radius <= y <= room.y_max - radius
        )
        if radius > 0 and not inside:
            # straddling rooms: every point of the rim must be in some room
            for k in range(_RIM_POINTS):
                a = 2 * math.pi * k / _RIM_POINTS
                px, py = x + radius * math.cos(a), y + radius * math.sin(a)
                if self.room_at(px, py) is None:
                    return f"left the rooms at ({px:.2f}, {py:.2f})"
        return None

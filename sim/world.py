"""A small home: rooms, named places, coloured objects, people, and keep-out zones."""

from __future__ import annotations

import math
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from omni_agent.config import Rect
from omni_agent.errors import UserError
from omni_agent.messages import Pose2D, SceneDescription, SeenThing
from omni_agent.safety import SiteMap

DEFAULT_WORLD = Path(__file__).parent / "worlds" / "home.yaml"
VIEW_RANGE_M = 4.0


class WorldError(UserError):
    pass


class WorldObject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    colour: str = ""
    place: str
    """The place it is at (it is seen from there and from its room)."""

    @property
    def label(self) -> str:
        return f"{self.colour} {self.name}".strip()


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    place: str


class World(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "home"
    rooms: list[Rect]
    places: dict[str, Pose2D]
    objects: list[WorldObject] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)
    keepout: list[Rect] = Field(default_factory=list)
    robot_start: str

    @classmethod
    def load(cls, path: Path = DEFAULT_WORLD) -> World:
        try:
            return cls.model_validate(yaml.safe_load(Path(path).read_text()))
        except FileNotFoundError:
            raise WorldError(f"world file not found: {path}") from None
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise WorldError(f"world {path}: {where}: {first['msg']}") from None

    def room_at(self, x: float, y: float) -> Rect | None:
        return next((r for r in self.rooms if r.contains(x, y)), None)

    def place_at(self, pose: Pose2D, within_m: float = 1.0) -> str | None:
        name, where = min(self.places.items(), key=lambda kv: kv[1].distance_to(pose))
        return name if where.distance_to(pose) <= within_m else None

    def site_map(self) -> SiteMap:
        return SiteMap(
            places=dict(self.places),
            geofence=list(self.rooms),
            keepout=list(self.keepout),
            landmarks=self.landmarks(),
        )

    def landmarks(self) -> dict[str, Pose2D]:
        """Everything look_at can face: objects and people at their places."""
        marks = {o.label: self.places[o.place] for o in self.objects}
        marks.update({o.name: self.places[o.place] for o in self.objects})
        marks.update({p.name: self.places[p.place] for p in self.people})
        return marks

    def scene(self, pose: Pose2D) -> SceneDescription:
        """What the robot's camera would show: things in its room and in range."""
        room = self.room_at(pose.x, pose.y)
        things: list[SeenThing] = []
        candidates = [(o.label, "object", o.place) for o in self.objects] + [
            (p.name, "person", p.place) for p in self.people
        ]
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

    def violation(self, x: float, y: float) -> str | None:
        """Ground truth, independent of the agent's safety envelope."""
        for zone in self.keepout:
            if zone.contains(x, y):
                return f"entered keep-out zone {zone.name}"
        if self.room_at(x, y) is None:
            return f"left the rooms at ({x:.2f}, {y:.2f})"
        return None

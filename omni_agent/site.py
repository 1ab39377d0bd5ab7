"""The robot's site: rooms, doors, named places, landmarks and keep-out zones, from YAML.

The site is what the robot knows of where it works, so it belongs to the runtime, not to
the simulator: agent_node, action_node and `python -m ros_nodes.keepout` load it with
`load_site`, and the simulator's world (sim/world.py) is a site plus the robot's start.
The route planner lives here too, because the safety envelope checks the route the
executor will drive: the simulated robot, sim_bridge and the envelope all follow
`Site.route`.

The shipped site ("default") is omni_agent/sites/home.yaml.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from omni_agent.config import Rect
from omni_agent.errors import UserError
from omni_agent.kinematics import Zones
from omni_agent.messages import Pose2D
from omni_agent.safety import SiteMap

DEFAULT_SITE = Path(__file__).parent / "sites" / "home.yaml"


class SiteError(UserError):
    pass


class Door(BaseModel):
    """A gap in the wall between two rooms, centred at (x, y) on their shared edge."""

    model_config = ConfigDict(extra="forbid")

    rooms: tuple[str, str]
    x: float
    y: float
    width: float = Field(default=0.9, gt=0.0)

    @property
    def centre(self) -> Pose2D:
        return Pose2D(x=self.x, y=self.y)


class Landmark(BaseModel):
    """Something at a named place that look_at can face: an object (by its name, and by
    colour and name) or a person."""

    model_config = ConfigDict(extra="forbid")

    name: str
    colour: str = ""
    kind: Literal["object", "person"] = "object"
    place: str

    @property
    def label(self) -> str:
        return f"{self.colour} {self.name}".strip()


Segment = tuple[float, float, float, float]
"""A wall: (x1, y1, x2, y2)."""


class Site(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "site"
    rooms: list[Rect]
    places: dict[str, Pose2D]
    landmarks: list[Landmark] = Field(default_factory=list)
    keepout: list[Rect] = Field(default_factory=list)
    doors: list[Door] = Field(default_factory=list)
    """Where rooms connect; without any, each pair of rooms sharing an edge gets a door in
    the middle of that edge."""
    _walls: list[Segment] = PrivateAttr(default_factory=list)
    _graphs: dict[float, tuple[list[Pose2D], list[list[tuple[int, float]]]]] = PrivateAttr(
        default_factory=dict
    )
    _zone_cache: Zones | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        if not self.doors:
            self.doors = _derived_doors(self.rooms)
        names = {r.name for r in self.rooms}
        for door in self.doors:
            for room in door.rooms:
                if room not in names:
                    raise ValueError(f"door between unknown room {room!r}")
        for mark in self.landmarks:
            if mark.place not in self.places:
                raise ValueError(f"landmark {mark.name!r} at unknown place {mark.place!r}")
        self._walls = _walls(self.rooms, self.doors)

    @property
    def walls(self) -> list[Segment]:
        """Every room edge, with the door gaps cut out."""
        return self._walls

    def blocked(self, x1: float, y1: float, x2: float, y2: float) -> bool:
        """Whether the straight step from (x1, y1) to (x2, y2) crosses a wall."""
        return any(_crosses(x1, y1, x2, y2, w) for w in self._walls)

    def route(self, start: Pose2D, goal: Pose2D, clearance: float = 0.0) -> list[Pose2D] | None:
        """The shortest route from start to goal that crosses no wall and keeps `clearance`
        from the keep-out zones and the rooms' outer edges: waypoints, goal last; None
        when there is none.

        A visibility graph: straight legs between the start, the goal, door centres and
        the corners of each keep-out zone pushed out by the clearance. The simulated
        robot, sim_bridge and the safety envelope all call this, so the route the
        envelope checks is the route that is driven.
        """
        nodes, edges = self._graph(clearance)
        zones = self._zones()
        if start.distance_to(goal) < 1e-9:
            return [goal]
        if self._leg_ok(start, goal, zones, clearance):
            return [goal]
        # Dijkstra from the start over the static graph plus legs from the start and to
        # the goal; ties break by node order, so every caller gets the same route.
        n = len(nodes)
        start_i, goal_i = n, n + 1
        links: dict[int, list[tuple[int, float]]] = {i: list(edges[i]) for i in range(n)}
        links[start_i], links[goal_i] = [], []
        for i, node in enumerate(nodes):
            for j, end in ((start_i, start), (goal_i, goal)):
                if self._leg_ok(end, node, zones, clearance):
                    d = end.distance_to(node)
                    links[j].append((i, d))
                    links[i].append((j, d))
        dist = {start_i: 0.0}
        came: dict[int, int] = {}
        todo = [(0.0, start_i)]
        done: set[int] = set()
        while todo:
            todo.sort()
            d, here = todo.pop(0)
            if here in done:
                continue
            done.add(here)
            if here == goal_i:
                break
            for there, w in links[here]:
                if d + w < dist.get(there, math.inf) - 1e-12:
                    dist[there] = d + w
                    came[there] = here
                    todo.append((d + w, there))
        if goal_i not in came:
            return None
        path: list[Pose2D] = [goal]
        step = came[goal_i]
        while step != start_i:
            path.insert(0, nodes[step])
            step = came[step]
        return path

    def _zones(self) -> Zones:
        if self._zone_cache is None:
            self._zone_cache = Zones(keepout=list(self.keepout), geofence=list(self.rooms))
        return self._zone_cache

    def _leg_ok(self, a: Pose2D, b: Pose2D, zones: Zones, clearance: float) -> bool:
        if self.blocked(a.x, a.y, b.x, b.y):
            return False
        if zones.point_breach(a.x, a.y, clearance) or zones.point_breach(b.x, b.y, clearance):
            return False
        return zones.piece_breach((a.x, a.y, b.x, b.y), clearance) is None

    def _graph(self, clearance: float) -> tuple[list[Pose2D], list[list[tuple[int, float]]]]:
        """The static part of the visibility graph for one clearance (cached)."""
        key = round(clearance, 9)
        if key not in self._graphs:
            zones = self._zones()
            push = clearance + 0.01  # legs along a zone's side then pass the strict check
            nodes = [d.centre for d in self.doors]
            for z in self.keepout:
                for x, y in (
                    (z.x_min - push, z.y_min - push),
                    (z.x_max + push, z.y_min - push),
                    (z.x_max + push, z.y_max + push),
                    (z.x_min - push, z.y_max + push),
                ):
                    nodes.append(Pose2D(x=x, y=y))
            nodes = [p for p in nodes if zones.point_breach(p.x, p.y, clearance) is None]
            edges: list[list[tuple[int, float]]] = [[] for _ in nodes]
            for i, a in enumerate(nodes):
                for j in range(i + 1, len(nodes)):
                    b = nodes[j]
                    if self._leg_ok(a, b, zones, clearance):
                        edges[i].append((j, a.distance_to(b)))
                        edges[j].append((i, a.distance_to(b)))
            self._graphs[key] = (nodes, edges)
        return self._graphs[key]

    def room_at(self, x: float, y: float) -> Rect | None:
        return next((r for r in self.rooms if r.contains(x, y)), None)

    def place_at(self, pose: Pose2D, within_m: float = 1.0) -> str | None:
        name, where = min(self.places.items(), key=lambda kv: kv[1].distance_to(pose))
        return name if where.distance_to(pose) <= within_m else None

    @property
    def objects(self) -> list[Landmark]:
        return [m for m in self.landmarks if m.kind == "object"]

    @property
    def people(self) -> list[Landmark]:
        return [m for m in self.landmarks if m.kind == "person"]

    def site_map(self) -> SiteMap:
        return SiteMap(
            places=dict(self.places),
            geofence=list(self.rooms),
            keepout=list(self.keepout),
            landmarks=self.landmark_poses(),
            route=self.route,
        )

    def landmark_poses(self) -> dict[str, Pose2D]:
        """Everything look_at can face: objects (by label and by name), then people."""
        marks = {o.label: self.places[o.place] for o in self.objects}
        marks.update({o.name: self.places[o.place] for o in self.objects})
        marks.update({p.name: self.places[p.place] for p in self.people})
        return marks


def site_path(ref: str | Path) -> Path:
    """The file a `world`/`--world` value names: "default" is the shipped site."""
    return DEFAULT_SITE if str(ref) == "default" else Path(ref)


def read_yaml(path: Path, what: str, error: type[UserError]) -> dict[str, Any]:
    """A YAML mapping from a file, or `error` with one line saying what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise error(f"{what} {path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise error(f"{what} {path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def validation_line(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def load_site(ref: str | Path = "default") -> Site:
    """The site in a YAML file ("default": the shipped one); SiteError on a bad file."""
    path = site_path(ref)
    data = read_yaml(path, "site", SiteError)
    if "site" in data:  # the easy mix-up: a simulator world names its site
        raise SiteError(f"site {path}: a sim world, not a site: give its site ({data['site']})")
    try:
        return Site.model_validate(data)
    except ValidationError as err:
        raise SiteError(f"site {path}: {validation_line(err)}") from None


def _derived_doors(rooms: list[Rect]) -> list[Door]:
    doors = []
    for i, a in enumerate(rooms):
        for b in rooms[i + 1 :]:
            edge = _shared_edge(a, b)
            if edge is not None:
                x1, y1, x2, y2 = edge
                length = math.hypot(x2 - x1, y2 - y1)
                doors.append(
                    Door(
                        rooms=(a.name, b.name),
                        x=(x1 + x2) / 2,
                        y=(y1 + y2) / 2,
                        width=min(0.9, 0.8 * length),
                    )
                )
    return doors


def _shared_edge(a: Rect, b: Rect) -> Segment | None:
    for ax in (a.x_min, a.x_max):
        for bx in (b.x_min, b.x_max):
            lo, hi = max(a.y_min, b.y_min), min(a.y_max, b.y_max)
            if ax == bx and hi - lo > 0.5:
                return (ax, lo, ax, hi)
    for ay in (a.y_min, a.y_max):
        for by in (b.y_min, b.y_max):
            lo, hi = max(a.x_min, b.x_min), min(a.x_max, b.x_max)
            if ay == by and hi - lo > 0.5:
                return (lo, ay, hi, ay)
    return None


def _walls(rooms: list[Rect], doors: list[Door]) -> list[Segment]:
    """Room edges (shared ones once) minus the door gaps."""
    edges: set[Segment] = set()
    for r in rooms:
        edges.update(
            {
                (r.x_min, r.y_min, r.x_max, r.y_min),
                (r.x_min, r.y_max, r.x_max, r.y_max),
                (r.x_min, r.y_min, r.x_min, r.y_max),
                (r.x_max, r.y_min, r.x_max, r.y_max),
            }
        )
    walls: list[Segment] = []
    for x1, y1, x2, y2 in sorted(edges):
        horizontal = y1 == y2
        lo, hi = (x1, x2) if horizontal else (y1, y2)
        gaps = sorted(
            (c - d.width / 2, c + d.width / 2)
            for d in doors
            for along, across, c in [(d.x, d.y, d.x) if horizontal else (d.y, d.x, d.y)]
            if abs(across - (y1 if horizontal else x1)) < 1e-6 and lo <= along <= hi
        )
        start = lo
        for g_lo, g_hi in gaps:
            if g_lo > start:
                walls.append(_piece(horizontal, x1, y1, start, min(g_lo, hi)))
            start = max(start, g_hi)
        if start < hi:
            walls.append(_piece(horizontal, x1, y1, start, hi))
    return walls


def _piece(horizontal: bool, x: float, y: float, lo: float, hi: float) -> Segment:
    return (lo, y, hi, y) if horizontal else (x, lo, x, hi)


def _crosses(x1: float, y1: float, x2: float, y2: float, wall: Segment) -> bool:
    """Whether segment (x1, y1)-(x2, y2) touches the wall segment."""
    x3, y3, x4, y4 = wall
    d = (x2 - x1) * (y4 - y3) - (y2 - y1) * (x4 - x3)
    if d == 0:
        return False
    t = ((x3 - x1) * (y4 - y3) - (y3 - y1) * (x4 - x3)) / d
    u = ((x3 - x1) * (y2 - y1) - (y3 - y1) * (x2 - x1)) / d
    return 0.0 < t <= 1.0 and 0.0 <= u <= 1.0

"""The robot in Foxglove: live over the Foxglove WebSocket protocol, recorded as MCAP.

Robotics teams watch robots in Foxglove, so the agent speaks its language: the camera as
a RawImage, the map with the robot's pose, path, places and people as a SceneUpdate (and
the robot's frame on /tf), the transcript as Log messages, and the interaction state,
actions and recalled memories as JSON channels with a JSON schema. One `LiveView` feeds
a WebSocket server on 127.0.0.1, an MCAP file, or both, from one foxglove Context, so a
recording carries exactly the channels seen live and opens in the same layout
(launch/foxglove-layout.json).

It listens, never steers: it is an event sink (AgentEvent), follows the bus's camera,
and shows what memory recalled for each turn from the agent's `recalled` event. A failing
or slow viewer never reaches the agent loop: logging to a channel only queues a message.
Needs the `live` extra (foxglove-sdk).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omni_agent.errors import UserError
from omni_agent.events import AgentEvent
from omni_agent.messages import ImageFrame, Pose2D
from omni_agent.safety import SiteMap

if TYPE_CHECKING:
    from omni_agent.transport import Bus, Subscription

DEFAULT_PORT = 8765
MAP_FRAME = "map"
ROBOT_FRAME = "base_link"

TOPICS = {
    "camera": "/camera/image",
    "map": "/map/scene",
    "tf": "/tf",
    "transcript": "/transcript",
    "state": "/agent/state",
    "actions": "/agent/actions",
    "memories": "/agent/memories",
    "turns": "/agent/turns",
}
"""Every channel a LiveView opens, by role (the layout file refers to these names)."""

STATE_SCHEMA = {
    "type": "object",
    "properties": {
        "state": {"type": "string"},
        "source": {"type": "string"},
        "reason": {"type": "string"},
        "trigger": {"type": "string"},
    },
}
ACTION_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["executed", "failed", "rejected"]},
        "skill": {"type": "string"},
        "action": {"type": "object"},
        "detail": {"type": "string"},
    },
}
MEMORY_SCHEMA = {
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "person": {"type": ["string", "null"]},
        "prefetched": {"type": "boolean"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string"},
                    "turn_id": {"type": ["string", "null"]},
                    "text": {"type": "string"},
                    "score": {"type": ["number", "null"]},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}
TURN_SCHEMA = {
    "type": "object",
    "properties": {
        "index": {"type": "integer"},
        "person": {"type": ["string", "null"]},
        "user": {"type": "string"},
        "say": {"type": "string"},
        "interrupted": {"type": "boolean"},
        "latency_ms": {"type": "object"},
    },
}


class LiveUnavailable(UserError):
    pass


def _foxglove() -> Any:
    try:
        import foxglove
    except ImportError:
        raise LiveUnavailable(
            "the live view needs foxglove-sdk: pip install 'omni-agent[live]'"
        ) from None
    return foxglove


_ONE_ID = re.compile(r"^(?P<head>.+): (?P<id>\w+)$")
FOXGLOVE_LOGGERS = ("foxglove.websocket.connected_client", "foxglove.websocket.server")
"""Where the Foxglove server logs what a client did wrong, one line per channel id."""


class _Burst:
    def __init__(self, record: logging.LogRecord, first: float) -> None:
        self.record = record
        self.ids: list[str] = []
        self.first = self.last = first


class BurstSummary(logging.Filter):
    """Collapses a burst of alike lines that differ only in a trailing id into one line.

    One subscribe message can name thousands of channels the server does not have, and
    the server logs an ERROR line for each: a misbehaving viewer must not flood the
    robot's log. The first line of a burst starts it; once no alike line came for
    `quiet_s`, one summary line goes out with the count and the first few ids."""

    def __init__(self, quiet_s: float = 2.0) -> None:
        super().__init__()
        self.quiet_s = quiet_s
        self._lock = threading.Lock()
        self._bursts: dict[tuple[str, str], _Burst] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        match = _ONE_ID.match(record.getMessage())
        if match is None:
            return True
        key = (record.name, match["head"])
        now = time.monotonic()
        with self._lock:
            burst = self._bursts.get(key)
            if burst is None:
                burst = self._bursts[key] = _Burst(record, now)
                self._later(key, self.quiet_s)
            burst.ids.append(match["id"])
            burst.last = now
        return False

    def _later(self, key: tuple[str, str], delay: float) -> None:
        timer = threading.Timer(delay, self._due, (key,))
        timer.daemon = True
        timer.start()

    def _due(self, key: tuple[str, str]) -> None:
        with self._lock:
            burst = self._bursts.get(key)
            if burst is None:
                return
            wait = burst.last + self.quiet_s - time.monotonic()
            if wait > 0:  # still going: look again once it has been quiet
                self._later(key, wait)
                return
            del self._bursts[key]
        self._emit(key, burst)

    def flush(self) -> None:
        """Write the summary of every burst now (the server is stopping)."""
        with self._lock:
            bursts, self._bursts = self._bursts, {}
        for key, burst in bursts.items():
            self._emit(key, burst)

    @staticmethod
    def _emit(key: tuple[str, str], burst: _Burst) -> None:
        ids = burst.ids
        shown = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
        logging.getLogger(key[0]).log(
            burst.record.levelno, "%s: %s (%d lines like it in one)", key[1], shown, len(ids)
        )


_BURSTS = BurstSummary()


@dataclass
class MapView:
    """What the map shows beyond the site map: walls, people, objects (sim or perception)."""

    site: SiteMap = field(default_factory=SiteMap)
    walls: Sequence[tuple[float, float, float, float]] = ()
    people: dict[str, Pose2D] = field(default_factory=dict)
    objects: dict[str, tuple[Pose2D, tuple[int, int, int]]] = field(default_factory=dict)


class _Listener:
    """Notes which topics clients subscribed to, so a caller can wait for a viewer."""

    def __init__(self, on_topic: Callable[[str], None]) -> None:
        self.changed = threading.Condition()
        self.topics: set[str] = set()
        self.on_topic = on_topic

    def on_subscribe(self, client: Any, channel: Any) -> None:
        with contextlib.suppress(Exception):  # never let a viewer break the server thread
            self.on_topic(channel.topic)
        with self.changed:
            self.topics.add(channel.topic)
            self.changed.notify_all()

    def on_unsubscribe(self, client: Any, channel: Any) -> None:
        return None

    def wait(self, topics: set[str] | None, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(
                lambda: topics <= self.topics if topics else bool(self.topics), timeout
            )


class LiveView:
    """Foxglove channels for one robot or episode: served live, recorded, or both.

    `clock` gives the time stamped on messages (seconds since the Unix epoch): the
    simulated clock in the sim, so the live view and the recording share its timeline.
    `camera_period_s` spaces camera frames on that clock (a recording needs a few a
    second, not one per step of motion); the newest frame is always sent on close.
    """

    def __init__(
        self,
        *,
        serve: bool = True,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        mcap: Path | None = None,
        name: str = "omni-agent",
        clock: Callable[[], float] = time.time,
        camera_period_s: float = 0.0,
    ) -> None:
        fg = _foxglove()
        for logger in FOXGLOVE_LOGGERS:  # the same filter object is added once only
            logging.getLogger(logger).addFilter(_BURSTS)
        from foxglove.channels import (
            FrameTransformsChannel,
            LogChannel,
            RawImageChannel,
            SceneUpdateChannel,
        )

        if not serve and mcap is None:
            raise ValueError("a LiveView needs a server, an MCAP path, or both")
        self._map: MapView | None = None
        self._pose: Pose2D | None = None
        self._path: list[Pose2D] = []
        self.camera_period_s = camera_period_s
        self._last_frame: ImageFrame | None = None
        self._held: ImageFrame | None = None
        self._frame_ns = -(10**30)
        self._feeds: list[tuple[Subscription[Any], Callable[[Any], None]]] = []
        self._drains: list[asyncio.Task[None]] = []
        self.host = host
        self.clock = clock
        self.context = fg.Context()
        ctx = self.context
        self.camera = RawImageChannel(TOPICS["camera"], context=ctx)
        self.scene = SceneUpdateChannel(TOPICS["map"], context=ctx)
        self.tf = FrameTransformsChannel(TOPICS["tf"], context=ctx)
        self.transcript = LogChannel(TOPICS["transcript"], context=ctx)
        self.state = fg.Channel(TOPICS["state"], schema=STATE_SCHEMA, context=ctx)
        self.actions = fg.Channel(TOPICS["actions"], schema=ACTION_SCHEMA, context=ctx)
        self.memories = fg.Channel(TOPICS["memories"], schema=MEMORY_SCHEMA, context=ctx)
        self.turns = fg.Channel(TOPICS["turns"], schema=TURN_SCHEMA, context=ctx)
        self.listener = _Listener(self._caught_up)
        self.server: Any = None
        self.mcap: Any = None
        self.mcap_path = mcap
        if mcap is not None:
            mcap.parent.mkdir(parents=True, exist_ok=True)
            self.mcap = fg.open_mcap(mcap, allow_overwrite=True, context=ctx)
        if serve:
            try:
                self.server = fg.start_server(
                    name=name, host=host, port=port, context=ctx, server_listener=self.listener
                )
            except RuntimeError as exc:
                self._close_mcap()
                raise LiveUnavailable(
                    f"cannot serve the live view on {host}:{port} ({exc}): "
                    "is another one running? choose another port"
                ) from None

    @property
    def address(self) -> str | None:
        """ws://host:port of the live server (None when only recording)."""
        return f"ws://{self.host}:{self.server.port}" if self.server is not None else None

    @property
    def port(self) -> int | None:
        return int(self.server.port) if self.server is not None else None

    async def wait_for_viewer(self, timeout: float, topics: set[str] | None = None) -> bool:
        """True once a Foxglove client subscribed to a channel (to each of `topics`, if
        given), False after `timeout` seconds."""
        return await asyncio.to_thread(self.listener.wait, topics, timeout)

    def _caught_up(self, topic: str) -> None:
        """A viewer that subscribes late gets the map and the last frame at once."""
        if topic == TOPICS["map"]:
            self._publish_map()
        elif topic == TOPICS["camera"] and self._last_frame is not None:
            self._log_image(self._last_frame)

    # -- what the agent reports -------------------------------------------------------

    def __call__(self, event: AgentEvent) -> None:
        d = event.data
        ns = self._ns()
        if self._held is not None and ns - self._frame_ns >= self.camera_period_s * 1e9:
            self._log_image(self._held)
        kind = event.kind
        if kind == "user":
            self._say(str(d.get("person") or "user"), str(d.get("text", "")), ns)
        elif kind == "robot":
            self._say("robot", str(d.get("text", "")), ns)
        elif kind == "state":
            self.state.log(
                {
                    "state": str(d.get("dest", "")),
                    "source": str(d.get("source", "")),
                    "reason": str(d.get("reason") or ""),
                    "trigger": str(d.get("trigger") or ""),
                },
                log_time=ns,
            )
        elif kind == "action":
            action = dict(d.get("action") or {})
            self.actions.log(
                {
                    "status": "executed" if d.get("ok") else "failed",
                    "skill": str(action.get("skill", "")),
                    "action": action,
                    "detail": str(d.get("detail", "")),
                },
                log_time=ns,
            )
        elif kind == "rejected":
            self.actions.log(
                {
                    "status": "rejected",
                    "skill": str(d.get("skill", "")),
                    "action": {},
                    "detail": str(d.get("reason", "")),
                },
                log_time=ns,
            )
        elif kind == "recalled":
            query, items = str(d.get("query", "")), list(d.get("items", []))
            self.recalled(query, d.get("person"), items, bool(d.get("prefetched")))
        elif kind == "turn":
            self.turns.log(
                {
                    "index": int(d.get("index", 0)),
                    "person": d.get("person"),
                    "user": str(d.get("user", "")),
                    "say": str(d.get("say", "")),
                    "interrupted": bool(d.get("interrupted")),
                    "latency_ms": dict(d.get("latency_ms") or {}),
                },
                log_time=ns,
            )
        elif kind in ("note", "sim", "error"):
            level = "error" if kind == "error" else "note"
            self._say(level, str(d.get("text") or d.get("error") or d), ns, note=True)

    def recalled(
        self, query: str, person: Any, items: Sequence[Any], prefetched: bool = False
    ) -> None:
        """The memories one turn's context recalled, with their scores and reasons, and
        whether that context was built during speech (speculative recall)."""
        rows = []
        for item in items:
            get = item.get if isinstance(item, dict) else lambda k, i=item: getattr(i, k, None)
            score = get("score")
            rows.append(
                {
                    "kind": str(get("kind") or ""),
                    "turn_id": get("turn_id"),
                    "text": str(get("text") or ""),
                    "score": round(float(score), 4) if score is not None else None,
                    "reason": str(get("reason") or ""),
                }
            )
        message = {"query": query, "person": person, "prefetched": prefetched, "items": rows}
        self.memories.log(message, log_time=self._ns())

    def _say(self, who: str, text: str, ns: int, *, note: bool = False) -> None:
        from foxglove.messages import Log, LogLevel

        level = LogLevel.Warning if who == "error" else LogLevel.Info
        self.transcript.log(
            Log(
                timestamp=_stamp(ns),
                level=LogLevel.Debug if note and who != "error" else level,
                message=text,
                name=who,
            ),
            log_time=ns,
        )

    # -- what the robot sees and where it is ------------------------------------------

    def image(self, frame: ImageFrame) -> None:
        """A camera frame; at most one per `camera_period_s` of the view's clock."""
        if frame is self._last_frame:
            return
        self._last_frame = frame
        if self._ns() - self._frame_ns < self.camera_period_s * 1e9:
            self._held = frame
            return
        self._log_image(frame)

    def _log_image(self, frame: ImageFrame) -> None:
        from foxglove.messages import RawImage

        self._held = None
        ns = self._frame_ns = self._ns()
        channels = 1 if frame.encoding == "mono8" else 3
        self.camera.log(
            RawImage(
                timestamp=_stamp(ns),
                frame_id="camera",
                width=frame.width,
                height=frame.height,
                encoding=frame.encoding,
                step=frame.width * channels,
                data=frame.data,
            ),
            log_time=ns,
        )

    def set_map(self, view: MapView) -> None:
        self._map = view
        self._publish_map()

    def pose(self, pose: Pose2D, path: Sequence[Pose2D] | None = None) -> None:
        """The robot's pose (and its path so far); the map is sent again when it moved."""
        if path is not None:
            moved = pose != self._pose or len(path) != len(self._path)
            self._path = list(path)
        else:
            moved = pose != self._pose
            if moved:
                self._path.append(pose)
        self._pose = pose
        if moved:
            self._publish_map()

    def refresh(self) -> None:
        """Send the map again (a viewer that connected late gets the scene at once)."""
        self._publish_map()

    def follow(self, bus: Bus) -> None:
        """Show the bus's camera frames and odometry as they come (call in the event loop)."""
        from omni_agent.transport import CAMERA, ODOM

        frame, odom = bus.latest(CAMERA), bus.latest(ODOM)
        if frame is not None:
            self.image(frame)
        if odom is not None:
            self.pose(odom.pose)
        self._follow(bus.subscribe(CAMERA), self.image)
        self._follow(bus.subscribe(ODOM), lambda msg: self.pose(msg.pose))

    def _follow(self, sub: Subscription[Any], show: Callable[[Any], None]) -> None:
        async def drain() -> None:
            async for msg in sub:
                show(msg)

        self._feeds.append((sub, show))
        self._drains.append(asyncio.create_task(drain()))

    def _publish_map(self) -> None:
        if self._map is None and self._pose is None:
            return
        ns = self._ns()
        path = list(self._path)  # the server thread may send it too (_caught_up)
        self.scene.log(_scene(self._map or MapView(), self._pose, path, ns), log_time=ns)
        if self._pose is not None:
            self.tf.log(_transforms(self._pose, ns), log_time=ns)

    def _ns(self) -> int:
        return int(self.clock() * 1e9)

    def close(self) -> Path | None:
        """Stop the server and finish the recording; returns the MCAP path, if any."""
        for task in self._drains:
            task.cancel()
        for sub, show in self._feeds:
            while (msg := sub.get_nowait()) is not None:  # what the drains had not reached
                show(msg)
            sub.close()
        self._feeds, self._drains = [], []
        if self._held is not None:  # a recording ends on what the robot saw last
            self._log_image(self._held)
        if self.server is not None:
            self.server.stop()
            self.server = None
            _BURSTS.flush()
        self._close_mcap()
        return self.mcap_path

    def _close_mcap(self) -> None:
        if self.mcap is not None:
            self.mcap.close()
            self.mcap = None


def _stamp(ns: int) -> Any:
    from foxglove.messages import Timestamp

    return Timestamp(sec=ns // 10**9, nsec=ns % 10**9)


def _quat(yaw: float) -> Any:
    from foxglove.messages import Quaternion

    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


def _at(x: float, y: float, z: float = 0.0, yaw: float = 0.0) -> Any:
    from foxglove.messages import Pose, Vector3

    return Pose(position=Vector3(x=x, y=y, z=z), orientation=_quat(yaw))


def _colour(r: float, g: float, b: float, a: float = 1.0) -> Any:
    from foxglove.messages import Color

    return Color(r=r, g=g, b=b, a=a)


def _label(text: str, x: float, y: float, z: float, size: float, rgb: tuple[float, ...]) -> Any:
    from foxglove.messages import TextPrimitive

    return TextPrimitive(
        pose=_at(x, y, z),
        billboard=True,
        font_size=size,
        scale_invariant=True,
        color=_colour(*rgb),
        text=text,
    )


def _scene(view: MapView, pose: Pose2D | None, path: Sequence[Pose2D], ns: int) -> Any:
    from foxglove.messages import (
        ArrowPrimitive,
        CubePrimitive,
        LinePrimitive,
        LinePrimitiveLineType,
        Point3,
        SceneEntity,
        SceneUpdate,
        SpherePrimitive,
        Vector3,
    )

    stamp = _stamp(ns)

    def entity(id: str, **parts: Any) -> Any:
        return SceneEntity(timestamp=stamp, frame_id=MAP_FRAME, id=id, **parts)

    def floor(rect: Any, rgb: tuple[float, ...], z: float) -> Any:
        w, h = rect.x_max - rect.x_min, rect.y_max - rect.y_min
        return CubePrimitive(
            pose=_at(rect.x_min + w / 2, rect.y_min + h / 2, z),
            size=Vector3(x=w, y=h, z=0.02),
            color=_colour(*rgb),
        )

    site = view.site
    grey = (0.45, 0.45, 0.45)
    entities = [
        entity(
            "rooms",
            cubes=[floor(r, (0.96, 0.94, 0.9, 1.0), -0.02) for r in site.geofence],
            texts=[
                _label(r.name, (r.x_min + r.x_max) / 2, r.y_max - 0.3, 0.05, 14, grey)
                for r in site.geofence
                if r.name
            ],
        ),
        entity("keepout", cubes=[floor(r, (0.9, 0.3, 0.3, 0.5), 0.0) for r in site.keepout]),
        entity(
            "walls",
            lines=[
                LinePrimitive(
                    type=LinePrimitiveLineType.LineList,
                    thickness=0.08,
                    points=[Point3(x=x1, y=y1, z=0.1), Point3(x=x2, y=y2, z=0.1)],
                    color=_colour(0.2, 0.2, 0.2),
                )
                for x1, y1, x2, y2 in view.walls
            ],
        ),
        entity(
            "places",
            texts=[
                _label(name, p.x, p.y, 0.1, 11, (0.3, 0.3, 0.6)) for name, p in site.places.items()
            ],
        ),
        entity(
            "objects",
            cubes=[
                CubePrimitive(
                    pose=_at(p.x, p.y, 0.15),
                    size=Vector3(x=0.3, y=0.3, z=0.3),
                    color=_colour(*(c / 255 for c in rgb)),
                )
                for p, rgb in view.objects.values()
            ],
            texts=[
                _label(name, p.x, p.y, 0.45, 11, (0.1, 0.1, 0.1))
                for name, (p, _) in view.objects.items()
            ],
        ),
        entity(
            "people",
            spheres=[
                SpherePrimitive(
                    pose=_at(p.x, p.y, 0.9),
                    size=Vector3(x=0.5, y=0.5, z=1.7),
                    color=_colour(0.98, 0.43, 0.08),
                )
                for p in view.people.values()
            ],
            texts=[
                _label(name, p.x, p.y, 1.9, 13, (0.6, 0.2, 0.0)) for name, p in view.people.items()
            ],
        ),
        entity(
            "path",
            lines=[
                LinePrimitive(
                    type=LinePrimitiveLineType.LineStrip,
                    thickness=0.05,
                    points=[Point3(x=p.x, y=p.y, z=0.05) for p in path],
                    color=_colour(0.2, 0.4, 0.8),
                )
            ]
            if len(path) > 1
            else [],
        ),
    ]
    if pose is not None:
        entities.append(
            entity(
                "robot",
                arrows=[
                    ArrowPrimitive(
                        pose=_at(pose.x, pose.y, 0.2, pose.yaw),
                        shaft_length=0.4,
                        shaft_diameter=0.08,
                        head_length=0.2,
                        head_diameter=0.2,
                        color=_colour(0.2, 0.4, 0.8),
                    )
                ],
                spheres=[
                    SpherePrimitive(
                        pose=_at(pose.x, pose.y, 0.2),
                        size=Vector3(x=0.45, y=0.45, z=0.4),
                        color=_colour(0.2, 0.4, 0.8, 0.8),
                    )
                ],
            )
        )
    return SceneUpdate(entities=entities)


def _transforms(pose: Pose2D, ns: int) -> Any:
    from foxglove.messages import FrameTransform, FrameTransforms, Vector3

    return FrameTransforms(
        transforms=[
            FrameTransform(
                timestamp=_stamp(ns),
                parent_frame_id=MAP_FRAME,
                child_frame_id=ROBOT_FRAME,
                translation=Vector3(x=pose.x, y=pose.y, z=0.0),
                rotation=_quat(pose.yaw),
            )
        ]
    )

"""Episode recordings in rosbag2 format (MCAP storage, via `rosbags`), and replay.

Each episode becomes a rosbag2 directory that `ros2 bag play` and Foxglove open: the
scenario itself, what people said, what the robot said, actions, rejections, state
transitions and whole turns, each as std_msgs/String carrying JSON (one topic per kind),
and the robot's sensors under the topic names and types of the ROS graph (docs/ros2.md):
camera frames (sensor_msgs/Image), the camera's semantic channel, the microphone and the
robot's voice (std_msgs/Int16MultiArray), ASR transcripts. Played back, a recording feeds
the ROS nodes as the live robot would. Everything is stamped in simulated time.
`replay` feeds the recorded user turns back into the agent, with the recorded days,
sessions and interruptions, and compares the actions that come out with the recorded
ones: with a deterministic brain they are the same.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from pydantic import BaseModel

from omni_agent.brain import Brain
from omni_agent.config import Config
from omni_agent.errors import UserError
from omni_agent.events import AgentEvent
from omni_agent.messages import AudioChunk, ImageFrame, UserUtterance, now
from omni_agent.transport import (
    CAMERA,
    MIC,
    SCENE,
    SPEECH_AUDIO,
    USER_TRANSCRIPT,
    Bus,
    Subscription,
)
from sim.clock import EPOCH, SimClock
from sim.scenario import Line, Scenario

if TYPE_CHECKING:
    from sim.robot import SimRobot

TOPICS = {
    "user": "/sim/user",
    "robot": "/sim/robot",
    "action": "/sim/action",
    "rejected": "/sim/rejected",
    "state": "/agent/state_transitions",
    "turn": "/sim/turn",
    "note": "/sim/note",
    "sim": "/sim/clock_notes",
}
OTHER_TOPIC = "/sim/other"
SCENARIO_TOPIC = "/sim/scenario"
EVENT_TOPICS = {SCENARIO_TOPIC, OTHER_TOPIC, *TOPICS.values()}
STRING = "std_msgs/msg/String"
IMAGE = "sensor_msgs/msg/Image"
AUDIO = "std_msgs/msg/Int16MultiArray"
AUDIO_LABEL = "pcm_s16_mono_"
"""Layout label of the ROS graph's audio topics (ros_nodes/convert.py): + the rate in Hz."""
CAMERA_HZ = 2.0
"""Camera frames recorded per simulated second, at most: 57.6 KB a frame at 160x120."""

M = TypeVar("M", bound=BaseModel)


class RecordingError(UserError):
    pass


def _typestore() -> Any:
    try:
        from rosbags.typesys import Stores, get_typestore
    except ImportError:
        raise RecordingError(
            "recording needs the rosbags package: pip install 'rosbags==0.11.9'"
        ) from None
    return get_typestore(Stores.ROS2_HUMBLE)


class McapRecorder:
    """An event sink that writes the episode to a rosbag2 (MCAP) directory at `path`.

    `attach` (run_episode calls it once the robot exists) adds the sensors. The camera's
    newest frame is written when an event happens, if the view changed and at least
    1/`camera_hz` simulated seconds passed since the last frame written (`math.inf`: every
    change); the last frame is always written on close, so a recording ends on what the
    robot saw. Audio and transcripts are written as they are published.
    """

    def __init__(self, path: Path, scenario: Scenario, *, camera_hz: float = CAMERA_HZ) -> None:
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

        if camera_hz <= 0:
            raise ValueError("camera_hz must be positive (math.inf records every frame)")
        self.store = _typestore()
        self.path = path
        self.camera_hz = camera_hz
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
        # zstd chunks, as `ros2 bag record --storage-preset-profile zstd_fast` writes them:
        # rendered frames and pauses in speech shrink several times
        self.writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self.writer.open()
        self._conns: dict[str, Any] = {}
        self._last_ns = 0
        self._bus: Bus | None = None
        self._clock: SimClock | None = None
        self._flow: tuple[float, float] | None = None
        """(simulated s, monotonic s) from which time runs in real time: see `_time`."""
        self._frame: ImageFrame | None = None
        self._frame_t = -math.inf
        self._scene = ""
        self._feeds: list[tuple[Subscription[Any], Callable[[Any], None]]] = []
        self._drains: list[asyncio.Task[None]] = []
        self._text(SCENARIO_TOPIC, scenario.model_dump_json(), 0.0)

    def attach(self, robot: SimRobot, clock: SimClock) -> None:
        """Record the robot's camera, microphone, voice and transcripts too."""
        self._bus, self._clock = robot.bus, clock
        self._look(clock.t)
        for topic in (MIC, SPEECH_AUDIO):
            self._follow(robot.bus.subscribe(topic), functools.partial(self._audio, topic.name))
        self._follow(robot.bus.subscribe(USER_TRANSCRIPT), self._transcript)

    def __call__(self, event: AgentEvent) -> None:
        t = self._time(event.stamp)
        self._look(t)  # an action's frame is published just before its event
        topic = TOPICS.get(event.kind, OTHER_TOPIC)
        self._text(topic, json.dumps({"kind": event.kind, **event.data}, default=str), t)

    def close(self) -> Path:
        for task in self._drains:
            task.cancel()
        for sub, write in self._feeds:
            while (msg := sub.get_nowait()) is not None:  # what the drains had not reached
                write(msg)
            sub.close()
        self._look(self._time(now()), last=True)
        self.writer.close()
        return self.path

    def _time(self, real: float) -> float:
        """Simulated seconds at monotonic time `real`.

        Without audio, the simulated clock. People and the robot speak in real time while
        the clock stands still (it jumps for driving and pauses), so once audio flows time
        runs on in real time from where the clock was, and follows the clock when it jumps
        ahead: each audio topic plays back at its pace and in order with the others.
        """
        t = self._clock.t if self._clock is not None else 0.0
        if self._flow is None:
            return t
        sim0, real0 = self._flow
        flowing = sim0 + real - real0
        if flowing >= t:
            return flowing
        self._flow = (t, max(real, real0))
        return t

    def _look(self, t: float, *, last: bool = False) -> None:
        """Write the camera's newest frame and semantic view, where they changed."""
        if self._bus is None:
            return
        frame = self._bus.latest(CAMERA)
        due = last or t - self._frame_t >= 1.0 / self.camera_hz
        if frame is not None and frame is not self._frame and due:
            self._image(frame, t)
            self._frame, self._frame_t = frame, t
        scene = self._bus.latest(SCENE)
        text = scene.model_dump_json(exclude={"stamp"}) if scene is not None else ""
        if text != self._scene:
            self._text(SCENE.name, text, t)
            self._scene = text

    def _follow(self, sub: Subscription[M], write: Callable[[M], None]) -> None:
        async def drain() -> None:
            async for msg in sub:
                write(msg)

        self._feeds.append((sub, write))
        self._drains.append(asyncio.create_task(drain()))

    def _stamp(self, t: float) -> int:
        """Nanoseconds for simulated time t, after the last message: one timeline for all."""
        self._last_ns = max(self._last_ns + 1, int((EPOCH + t) * 1e9))
        return self._last_ns

    def _put(self, topic: str, msgtype: str, msg: Any, ns: int) -> None:
        if topic not in self._conns:
            self._conns[topic] = self.writer.add_connection(topic, msgtype, typestore=self.store)
        self.writer.write(self._conns[topic], ns, self.store.serialize_cdr(msg, msgtype))

    def _text(self, topic: str, text: str, t: float) -> None:
        self._put(topic, STRING, self.store.types[STRING](data=text), self._stamp(t))

    def _image(self, frame: ImageFrame, t: float) -> None:
        types = self.store.types
        ns = self._stamp(t)
        stamp = types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
        msg = types[IMAGE](
            header=types["std_msgs/msg/Header"](stamp=stamp, frame_id="camera"),
            height=frame.height,
            width=frame.width,
            encoding=frame.encoding,
            is_bigendian=0,
            step=len(frame.data) // frame.height,
            data=np.frombuffer(frame.data, np.uint8),
        )
        self._put(CAMERA.name, IMAGE, msg, ns)

    def _audio(self, topic: str, chunk: AudioChunk) -> None:
        if self._flow is None:
            self._flow = (self._time(chunk.stamp), chunk.stamp)
        types = self.store.types
        samples = len(chunk.pcm) // 2
        dim = types["std_msgs/msg/MultiArrayDimension"](
            label=f"{AUDIO_LABEL}{chunk.sample_rate}", size=samples, stride=samples
        )
        msg = types[AUDIO](
            layout=types["std_msgs/msg/MultiArrayLayout"](dim=[dim], data_offset=0),
            data=np.frombuffer(chunk.pcm, "<i2"),
        )
        self._put(topic, AUDIO, msg, self._stamp(self._time(chunk.stamp)))

    def _transcript(self, utt: UserUtterance) -> None:
        # the turn id names the utterance the transcript belongs to, as on the bus
        text = json.dumps({"person": utt.person, "text": utt.text, "turn_id": utt.turn_id})
        self._text(USER_TRANSCRIPT.name, text, self._time(utt.stamp))


def read_recording(path: Path) -> tuple[Scenario | None, list[dict[str, Any]]]:
    """The recorded scenario (if any) and every recorded event, in order."""
    from rosbags.rosbag2 import Reader

    store = _typestore()
    if not path.exists():
        raise RecordingError(f"recording not found: {path}")
    scenario, events = None, []
    with Reader(path) as reader:
        # the event topics only: sensor topics are for players, not for replay
        events_only = [c for c in reader.connections if c.topic in EVENT_TOPICS]
        for conn, _, raw in reader.messages(connections=events_only):
            text = store.deserialize_cdr(raw, conn.msgtype).data
            if conn.topic == SCENARIO_TOPIC:
                scenario = Scenario.model_validate_json(text)
            else:
                events.append(json.loads(text))
    return scenario, events


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    from omni_agent.events import read_episode

    return [{"kind": e.kind, **e.data} for e in read_episode(path)]


@dataclass
class ReplayReport:
    recorded: list[list[dict[str, Any]]]
    """Actions executed per recorded turn."""
    replayed: list[list[dict[str, Any]]]
    user_turns: int
    differences: list[str] = field(default_factory=list)

    @property
    def same_actions(self) -> bool:
        return self.recorded == self.replayed

    def lines(self) -> list[str]:
        verdict = "the same actions" if self.same_actions else "DIFFERENT actions"
        return [
            f"replayed {self.user_turns} user turns; recorded "
            f"{sum(map(len, self.recorded))} actions, the replay gave {verdict}",
            *self.differences,
        ]


def _actions_per_turn(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [list(e.get("executed", [])) for e in events if e["kind"] == "turn"]


def replay_scenario(scenario: Scenario | None, events: list[dict[str, Any]]) -> Scenario:
    """The recorded user turns as a scenario, keeping the recorded days and sessions."""
    said = [(e.get("person"), e["text"]) for e in events if e["kind"] == "user"]
    if not said:
        raise RecordingError("the recording holds no user turns to replay")
    if scenario is not None and len(scenario.lines) == len(said):
        lines = [
            line.model_copy(update={"text": text, "person": person})
            for line, (person, text) in zip(scenario.lines, said, strict=True)
        ]
        return scenario.model_copy(update={"lines": lines, "name": f"replay-{scenario.name}"})
    base = scenario or Scenario(name="replay", lines=[Line(text=said[0][1])])
    flat = [{"text": text, "person": person} for person, text in said]
    data = base.model_dump(exclude={"lines", "expect", "server_fails_at"})
    return Scenario.model_validate({**data, "name": f"replay-{base.name}", "lines": flat})


async def replay_file(config: Config, path: Path, brain: Brain) -> ReplayReport:
    from sim.library import run_scenario

    if path.suffix == ".jsonl":
        scenario, events = None, _read_jsonl(path)
    else:
        scenario, events = read_recording(path)
    replay = replay_scenario(scenario, events)
    with tempfile.TemporaryDirectory() as tmp:  # a fresh memory, as the recording had
        result = await run_scenario(config, replay, brain, Path(tmp), log=False)
    recorded = _actions_per_turn(events)
    replayed = [[r.action for r in t.executed if r.ok] for t in result.turns]
    report = ReplayReport(recorded, replayed, len(replay.lines))
    for i, (a, b) in enumerate(zip(recorded, replayed, strict=False)):
        if a != b:
            report.differences.append(f"turn {i + 1}: recorded {a}, replayed {b}")
    if len(recorded) != len(replayed):
        report.differences.append(f"{len(recorded)} turns recorded, {len(replayed)} replayed")
    return report

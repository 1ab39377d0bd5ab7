"""Episode recordings in rosbag2 format (MCAP storage, via `rosbags`), and replay.

Each episode becomes a rosbag2 directory that `ros2 bag play` and Foxglove open: the
scenario itself, what people said, what the robot said, actions, rejections, state
transitions and whole turns, each as std_msgs/String carrying JSON (one topic per kind,
stamped in simulated time). `replay` feeds the recorded user turns back into the agent,
with the recorded days, sessions and interruptions, and compares the actions that come
out with the recorded ones: with a deterministic brain they are the same.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni_agent.brain import Brain
from omni_agent.config import Config
from omni_agent.errors import UserError
from omni_agent.events import AgentEvent
from sim.clock import EPOCH
from sim.scenario import Line, Scenario

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
SCENARIO_TOPIC = "/sim/scenario"
STRING = "std_msgs/msg/String"


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
    """An event sink that writes the episode to a rosbag2 (MCAP) directory at `path`."""

    def __init__(self, path: Path, scenario: Scenario) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.store = _typestore()
        self.path = path
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self._conns: dict[str, Any] = {}
        self._sim_t = 0.0
        self._last_ns = 0
        self._write(SCENARIO_TOPIC, scenario.model_dump_json())

    def _write(self, topic: str, text: str) -> None:
        if topic not in self._conns:
            self._conns[topic] = self.writer.add_connection(topic, STRING, typestore=self.store)
        msg = self.store.types[STRING](data=text)
        stamp = max(self._last_ns + 1, int((EPOCH + self._sim_t) * 1e9))
        self._last_ns = stamp
        self.writer.write(self._conns[topic], stamp, self.store.serialize_cdr(msg, STRING))

    def __call__(self, event: AgentEvent) -> None:
        if "sim_t" in event.data:
            self._sim_t = float(event.data["sim_t"])
        topic = TOPICS.get(event.kind, "/sim/other")
        self._write(topic, json.dumps({"kind": event.kind, **event.data}, default=str))

    def close(self) -> Path:
        self.writer.close()
        return self.path


def read_recording(path: Path) -> tuple[Scenario | None, list[dict[str, Any]]]:
    """The recorded scenario (if any) and every recorded event, in order."""
    from rosbags.rosbag2 import Reader

    store = _typestore()
    if not path.exists():
        raise RecordingError(f"recording not found: {path}")
    scenario, events = None, []
    with Reader(path) as reader:
        for conn, _, raw in reader.messages():
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

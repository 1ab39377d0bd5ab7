"""What the agent reports as it works: one typed event stream for transcripts, episode
logs, metrics and tests, so none of them reaches into the loop's internals.

Each kind of event is its own class with typed fields. `kind` and `data` are derived
views of the same fields: the episode log (one JSON line per event) is written from them
and read back into the same classes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any, ClassVar

from omni_agent.messages import now


@dataclass(frozen=True)
class AgentEvent:
    """Base class; `kind` names the event in logs and recordings."""

    kind: ClassVar[str] = "event"
    stamp: float = field(default_factory=now, kw_only=True)

    @property
    def data(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "stamp"}


@dataclass(frozen=True)
class StateChanged(AgentEvent):
    """The interaction state machine moved (every transition, with its reason)."""

    kind: ClassVar[str] = "state"
    trigger: str
    source: str
    dest: str
    reason: str = ""


@dataclass(frozen=True)
class UserSaid(AgentEvent):
    kind: ClassVar[str] = "user"
    person: str | None
    text: str
    heard: bool = False
    """The model hears the words itself (audio part); `text` is the transcript."""


@dataclass(frozen=True)
class RobotSaid(AgentEvent):
    kind: ClassVar[str] = "robot"
    text: str


@dataclass(frozen=True)
class ActionDone(AgentEvent):
    kind: ClassVar[str] = "action"
    ok: bool
    action: dict[str, Any]
    detail: str = ""


@dataclass(frozen=True)
class ActionRejectedEvent(AgentEvent):
    """A proposed action (or a whole reply) failed validation; the robot did not move."""

    kind: ClassVar[str] = "rejected"
    skill: str
    reason: str


@dataclass(frozen=True)
class Recalled(AgentEvent):
    """What long-term memory put into this turn's request."""

    kind: ClassVar[str] = "recalled"
    index: int
    query: str
    person: str | None
    text: str
    items: list[dict[str, Any]] = field(default_factory=list)
    """Each recalled piece: kind (recent, evidence, summary), turn_id, text, score, reason."""
    prefetched: bool = False
    """Built during speech from the partial transcript (speculative recall), not after."""


@dataclass(frozen=True)
class TurnEnded(AgentEvent):
    kind: ClassVar[str] = "turn"
    index: int
    person: str | None
    user: str
    say: str
    spoken: str
    interrupted: bool
    executed: list[dict[str, Any]]
    rejected: list[str]
    error: str | None
    latency_ms: dict[str, float]


@dataclass(frozen=True)
class Note(AgentEvent):
    """Something worth a line in the transcript (barge-in, an ignored utterance, ...)."""

    kind: ClassVar[str] = "note"
    text: str


@dataclass(frozen=True)
class SimEvent(AgentEvent):
    """What the simulator did (a session began, a person spoke, a fault was injected)."""

    kind: ClassVar[str] = "sim"
    text: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def data(self) -> dict[str, Any]:
        return {"text": self.text, **self.details}


EVENT_TYPES: dict[str, type[AgentEvent]] = {
    cls.kind: cls
    for cls in (
        StateChanged,
        UserSaid,
        RobotSaid,
        ActionDone,
        ActionRejectedEvent,
        Recalled,
        TurnEnded,
        Note,
    )
}

EventSink = Callable[[AgentEvent], None]


def event_from_log(kind: str, data: dict[str, Any], stamp: float) -> AgentEvent:
    """Rebuild a logged event as its class (episode logs of older versions included)."""
    if kind == SimEvent.kind:
        rest = {k: v for k, v in data.items() if k != "text"}
        return SimEvent(str(data.get("text", "")), rest, stamp=stamp)
    cls = EVENT_TYPES.get(kind)
    if cls is not None:
        names = {f.name for f in fields(cls)} - {"stamp"}
        try:
            return cls(**{k: v for k, v in data.items() if k in names}, stamp=stamp)
        except TypeError:
            pass  # a field this version requires is missing: keep it as a note
    return Note(f"{kind}: {json.dumps(data, default=str)}", stamp=stamp)


class EventFanout:
    """Delivers each event to every registered sink; a failing sink never breaks the loop."""

    def __init__(self, *sinks: EventSink) -> None:
        self._sinks = list(sinks)
        self.errors = 0

    def add(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def __call__(self, event: AgentEvent) -> None:
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:
                self.errors += 1


class EpisodeLog:
    """Writes every event as one JSON line (the episode log), flushed per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("w", encoding="utf-8")

    def __call__(self, event: AgentEvent) -> None:
        line = {"kind": event.kind, "data": event.data, "stamp": event.stamp}
        self._file.write(json.dumps(line, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_episode(path: Path) -> list[AgentEvent]:
    events = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            raw = json.loads(line)
            events.append(event_from_log(raw["kind"], raw["data"], raw["stamp"]))
    return events

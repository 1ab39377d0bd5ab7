"""What the agent reports as it works: one typed event stream for transcripts, episode
logs, metrics and tests, so none of them reaches into the loop's internals."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from omni_agent.messages import now


@dataclass(frozen=True)
class AgentEvent:
    kind: str
    """state | user | robot | action | rejected | turn | error | note"""
    data: dict[str, Any] = field(default_factory=dict)
    stamp: float = field(default_factory=now)


EventSink = Callable[[AgentEvent], None]


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
        self._file.write(json.dumps(asdict(event), default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_episode(path: Path) -> list[AgentEvent]:
    events = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            raw = json.loads(line)
            events.append(AgentEvent(kind=raw["kind"], data=raw["data"], stamp=raw["stamp"]))
    return events

"""JSONL import/export: one turn per line, ids kept (format in docs/memory.md).

Import validates the whole file before writing anything, then writes it in one
transaction: a malformed line yields one error naming the line and no turn is imported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from memory.facade import Memory
from memory.types import MemoryTurn, Pose, Speaker


class JsonlError(ValueError):
    pass


class JsonlTurn(BaseModel):
    """One line of the file. Unknown keys are refused: a typo should not drop data."""

    model_config = ConfigDict(extra="forbid")

    id: str
    session: str | None = None
    speaker: Speaker
    person: str | None = None
    time: float
    text: str
    place: str | None = None
    pose: Pose | None = None
    image_caption: str | None = None
    image_path: str | None = None
    audio_path: str | None = None
    transcript: str | None = None
    interrupted: bool = False
    shared: bool = False

    @field_validator("time", mode="before")
    @classmethod
    def _parse_time(cls, v: object) -> object:
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                pass
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
            if dt.tzinfo is None:  # naive times are UTC: the file must not depend on the host
                dt = dt.replace(tzinfo=timezone.utc)
            return dt.timestamp()
        return v


def parse_lines(lines: Iterable[str], source: str = "<jsonl>") -> list[MemoryTurn]:
    turns: list[MemoryTurn] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = JsonlTurn.model_validate(json.loads(line))
        except json.JSONDecodeError as e:
            raise JsonlError(f"{source}:{n}: not valid JSON ({e.msg})") from None
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "line"
            raise JsonlError(f"{source}:{n}: {where}: {err['msg']}") from None
        if row.id in seen:
            raise JsonlError(f"{source}:{n}: duplicate id {row.id!r}")
        seen.add(row.id)
        turns.append(MemoryTurn(**row.model_dump()))
    return turns


def import_jsonl(memory: Memory, path: str | Path) -> int:
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        turns = parse_lines(f, str(path))
    for n, t in enumerate(turns, start=1):
        if memory.store.get_turn(t.id) is not None:
            raise JsonlError(f"{path}: turn {n} id {t.id!r} is already in the store")
    # One transaction: the import is all-or-nothing.
    memory.add_turns(turns)
    return len(turns)


def export_lines(memory: Memory, person: str | None = None) -> Iterable[str]:
    """Every turn in time order (or only `person`'s own turns), as JSON lines.

    Time is written as unix seconds so a round trip is exact.
    """
    for st in memory.store.iter_turns():
        if person is not None and st.turn.person != person:
            continue
        row = st.turn.model_dump(exclude_none=True)
        for flag in ("interrupted", "shared"):
            if not row.get(flag):
                row.pop(flag, None)
        yield json.dumps(row, ensure_ascii=False)


def export_jsonl(memory: Memory, out: str | Path | IO[str], person: str | None = None) -> int:
    count = 0
    if isinstance(out, (str, Path)):
        with Path(out).open("w", encoding="utf-8") as f:
            return export_jsonl(memory, f, person)
    for line in export_lines(memory, person):
        out.write(line + "\n")
        count += 1
    return count

"""JSONL import/export: one turn per line, ids kept (format in docs/memory.md).

Import validates the whole file before writing anything, then writes it in one
transaction: a bad line (not UTF-8, not JSON, a wrong field, a time that is no date, a
media file outside the allowed folder) yields one error naming the line, and no turn is
imported. Corpora of recorded conversations fit as they are: any number of people (each
turn's `person`), sessions with their own date (a session line), dates in the past.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from memory.embeddings import MODEL_ID, bulk_embedder
from memory.facade import Memory
from memory.names import person_name, same_person
from memory.sql_store import check_time
from memory.types import MemoryTurn, Pose, Speaker


class JsonlError(ValueError):
    pass


def _parse_time(v: object) -> object:
    """Unix seconds, or ISO 8601 (a date alone is midnight; no zone is UTC), checked to be
    a date between the years 1 and 9999."""
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            dt = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
            if dt.tzinfo is None:  # naive times are UTC: the file must not depend on the host
                dt = dt.replace(tzinfo=timezone.utc)
            v = dt.timestamp()
    if isinstance(v, int | float) and not isinstance(v, bool):
        return check_time(float(v))
    return v


def _unicode(v: object) -> object:
    # JSON can spell a lone surrogate ("\udc00"): no such text can be stored or spoken.
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("holds a lone surrogate (U+D800-U+DFFF): not Unicode") from None
    return v


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _valid_unicode(cls, v: object) -> object:
        return _unicode(v)


class JsonlSession(_Line):
    """A session line: `{"session": "s1", "date": "2023-05-08T13:56:00Z"}`. Turns of that
    session without a `time` are placed at its date, one second apart in file order."""

    session: str = Field(min_length=1)
    date: float

    _date = field_validator("date", mode="before")(_parse_time)


class JsonlTurn(_Line):
    """One turn line. Unknown keys are refused: a typo should not drop data."""

    id: str = Field(min_length=1)
    session: str | None = Field(None, min_length=1)
    speaker: Speaker
    person: str | None = Field(None, min_length=1)
    time: float | None = None
    text: str
    place: str | None = None
    pose: Pose | None = None
    image_caption: str | None = None
    image_path: str | None = None
    audio_path: str | None = None
    transcript: str | None = None
    interrupted: bool = False
    shared: bool = False

    _time = field_validator("time", mode="before")(_parse_time)

    @field_validator("person", mode="after")
    @classmethod
    def _person(cls, v: str | None) -> str | None:
        # The one rule for names: control characters (an internal marker's look) refused.
        return None if v is None else person_name(v)

    @field_validator("pose", mode="after")
    @classmethod
    def _finite_pose(cls, v: Pose | None) -> Pose | None:
        if v is not None and not all(abs(c) < float("inf") for c in (v.x, v.y, v.yaw)):
            raise ValueError("pose values must be finite numbers")
        return v


def _load(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg})") from None
    except RecursionError:
        raise ValueError("nested too deeply to be a turn") from None


def _problem(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "line"
    return f"{where}: {err['msg'].removeprefix('Value error, ')}"


def parse_lines(lines: Iterable[str | bytes], source: str = "<jsonl>") -> list[MemoryTurn]:
    """The turns of a JSONL file, every line checked; JsonlError names the first bad one."""
    rows: list[tuple[int, JsonlTurn]] = []
    dates: dict[str, float] = {}
    seen: set[str] = set()
    for n, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as e:
            raise JsonlError(f"{source}:{n}: not UTF-8 (byte {e.start + 1} of the line)") from None
        if not line.strip():
            continue
        try:
            data = _load(line)
            if isinstance(data, dict) and "id" not in data and "date" in data:
                header = JsonlSession.model_validate(data)
                if header.session in dates:
                    raise ValueError(f"session {header.session!r} has a second date line")
                dates[header.session] = header.date
                continue
            row = JsonlTurn.model_validate(data)
        except ValueError as e:  # ValidationError is a ValueError
            what = _problem(e) if isinstance(e, ValidationError) else str(e)
            raise JsonlError(f"{source}:{n}: {what}") from None
        if row.id in seen:
            raise JsonlError(f"{source}:{n}: duplicate id {row.id!r}")
        seen.add(row.id)
        rows.append((n, row))
    turns: list[MemoryTurn] = []
    placed: dict[str, int] = {}
    for n, row in rows:
        fields = row.model_dump()
        if row.time is None:
            if row.session is None or row.session not in dates:
                raise JsonlError(
                    f"{source}:{n}: time: missing (give the turn a time, or its session "
                    'a date line: {"session": ..., "date": ...})'
                )
            k = placed[row.session] = placed.get(row.session, -1) + 1
            try:
                fields["time"] = check_time(dates[row.session] + k)
            except ValueError as e:
                raise JsonlError(f"{source}:{n}: {e}") from None
        turns.append(MemoryTurn(**fields))
    return turns


def _confine(turn: MemoryTurn, base: Path, roots: list[Path], where: str) -> MemoryTurn:
    """Media paths resolved against the file's folder, refused outside the allowed roots:
    a corpus line must not make the store copy any file the importer can read."""
    update = {}
    for field in ("image_path", "audio_path"):
        value = getattr(turn, field)
        if value is None:
            continue
        path = (base / value).resolve()  # follows symlinks and '..': the real location
        if not any(path.is_relative_to(root) for root in roots):
            raise JsonlError(
                f"{where}: {field} {value} is outside the allowed media folder {roots[0]} "
                "(move the file there, or name its folder with --media-root)"
            )
        update[field] = str(path)
    return turn.model_copy(update=update) if update else turn


def read_jsonl(path: str | Path, media_root: str | Path | None = None) -> list[MemoryTurn]:
    """The checked turns of a JSONL file, media paths made absolute and confined to
    `media_root` (default: the file's own folder)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            turns = parse_lines(f, str(path))
    except FileNotFoundError:
        raise JsonlError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise JsonlError(f"{path} is a directory; give a JSONL file") from None
    except OSError as e:
        raise JsonlError(f"{path}: cannot be read ({e.strerror or e})") from None
    base = path.parent.resolve()
    roots = [Path(media_root).resolve() if media_root is not None else base]
    return [_confine(t, base, roots, f"{path}: turn {t.id!r}") for t in turns]


def import_jsonl(memory: Memory, path: str | Path, media_root: str | Path | None = None) -> int:
    return add_imported(memory, read_jsonl(path, media_root), path)


def add_imported(memory: Memory, turns: list[MemoryTurn], source: str | Path) -> int:
    """Store checked turns in one transaction (all or nothing); an id already in the
    store refuses the whole file."""
    for n, t in enumerate(turns, start=1):
        if memory.store.get_turn(t.id) is not None:
            raise JsonlError(f"{source}: turn {n} id {t.id!r} is already in the store")
    # A batch job, not a robot's turn: embedded on every core (same model, same vectors).
    bulk = bulk_embedder() if memory.embedder.model_id == MODEL_ID else None
    memory.add_turns(turns, embedder=bulk)
    return len(turns)


def _export_rows(memory: Memory, person: str | None) -> Iterable[dict[str, Any]]:
    dates = memory.store.session_dates()
    dated: set[str] = set()
    for st in memory.store.iter_turns():
        if person is not None and not same_person(st.turn.person, person):
            continue
        session = st.turn.session
        if session is not None and session not in dated and session in dates:
            dated.add(session)
            yield {"session": session, "date": dates[session]}
        row = st.turn.model_dump(exclude_none=True)
        for flag in ("interrupted", "shared"):
            if not row.get(flag):
                row.pop(flag, None)
        yield row


def export_lines(memory: Memory, person: str | None = None) -> Iterable[str]:
    """Every turn in time order (or only `person`'s own turns), as JSON lines; each
    session's date line comes before its first turn.

    Time is written as unix seconds so a round trip is exact.
    """
    for row in _export_rows(memory, person):
        yield json.dumps(row, ensure_ascii=False)


def export_jsonl(memory: Memory, out: str | Path | IO[str], person: str | None = None) -> int:
    """Write the export to a file or stream; returns the number of turns written."""
    if isinstance(out, (str, Path)):
        with Path(out).open("w", encoding="utf-8") as f:
            return export_jsonl(memory, f, person)
    count = 0
    for row in _export_rows(memory, person):
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += "id" in row
    return count

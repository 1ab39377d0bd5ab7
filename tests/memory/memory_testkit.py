"""Shared helpers of the memory tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

from memory import MemoryTurn

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def turn(i: int, text: str, person: str | None = "alice", **kw: object) -> MemoryTurn:
    fields: dict[str, object] = {
        "id": f"t{i}",
        "session": "s1",
        "speaker": "user",
        "person": person,
        "time": T0 + 60 * i,
        "text": text,
    }
    fields.update(kw)
    return MemoryTurn.model_validate(fields)

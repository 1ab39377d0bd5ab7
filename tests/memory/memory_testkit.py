"""Shared helpers of the memory tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from memory import MemoryTurn

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z

# The backends every store test runs on (the `backend_db` fixture's parameters).
BACKENDS = ["sqlite", "postgresql"]


def backend_location(request: pytest.FixtureRequest, backend: str, folder: Path) -> str:
    """A new, empty memory of `backend`: a file in `folder`, or a fresh PostgreSQL database
    on the session's server (started on first use)."""
    if backend == "sqlite":
        return str(folder / "robot.db")
    return str(request.getfixturevalue("postgres").new_database())


def is_postgres(location: str) -> bool:
    return location.startswith("postgresql://")


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

"""What a store keeps and refuses: every field of a turn, sessions, the schema version
(on both backends), and the SQLite file's own upgrades and journal mode."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from memory_testkit import T0, is_postgres, turn

from memory import Memory, MemoryTurn, Pose
from memory.backends import open_store
from memory.embeddings import Embedder
from memory.sql_store import StoreError
from memory.store import MIGRATIONS, SCHEMA_VERSION, schema_version


def test_turn_round_trips_every_field(mem: Memory, backend_db: str, tmp_path: Path) -> None:
    frame = tmp_path / "frame.jpg"
    frame.write_bytes(b"jpeg")
    original = MemoryTurn(
        id="abc",
        session="s9",
        speaker="robot",
        person="bob",
        time=T0 + 1.5,
        place="garage",
        text="Here is the wrench.",
        transcript="here is the wrench",
        interrupted=True,
        image_caption="a red wrench",
        image_path=str(frame),
        pose=Pose(x=1.0, y=-2.0, yaw=0.5),
        shared=True,
    )
    mem.add_turn(original)
    got = mem.store.get_turn("abc")
    assert got is not None
    assert got.turn.image_path is not None
    assert Path(got.turn.image_path).read_bytes() == b"jpeg"
    # SQLite copies the file next to the database, so the store owns it; a fleet's
    # database keeps the path its robot gave.
    if is_postgres(backend_db):
        assert got.turn.image_path == str(frame.resolve())
    else:
        assert Path(got.turn.image_path).is_relative_to(mem.store.media_dir)  # type: ignore[attr-defined]
    assert got.turn.model_dump(exclude={"image_path"}) == original.model_dump(
        exclude={"image_path"}
    )


def test_wal_mode_and_schema_version(sqlite_mem: Memory) -> None:
    # SQLite only: the journal mode is the file's.
    db = sqlite3.connect(sqlite_mem.store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert schema_version(db) == SCHEMA_VERSION


def test_v1_file_is_upgraded_and_its_turns_become_searchable(
    tmp_path: Path, embedder: Embedder
) -> None:
    # SQLite only: robots in the field hold files written by the first schema.
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    MIGRATIONS[0](db)
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute(
        "INSERT INTO turns (id, speaker, person, time, text) VALUES "
        "('old1', 'user', 'alice', 1.0, 'My bicycle is in the shed.')"
    )
    db.execute(
        "INSERT INTO turns_fts (rowid, text, caption, place) VALUES (1, ?, '', '')",
        ("My bicycle is in the shed.",),
    )
    db.close()

    with Memory.open(path, embedder=embedder) as mem:
        assert schema_version(mem.store._db) == SCHEMA_VERSION
        st = mem.store.get_turn("old1")
        assert st is not None and st.turn.shared is False
        results = mem.search("where is my bike?", person="alice")
        assert [r.turn_id for r in results] == ["old1"]
        # The upgrade gives old rows their comparison key: any letter case finds them.
        assert [r.turn_id for r in mem.search("where is my bike?", person="Alice")] == ["old1"]


def _set_version(location: str, version: int) -> None:
    if is_postgres(location):
        import psycopg

        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute("UPDATE schema_version SET version = %s", (version,))
    else:
        with sqlite3.connect(location) as db:
            db.execute("UPDATE schema_version SET version = ?", (version,))


def test_store_refuses_a_newer_schema(backend_db: str) -> None:
    open_store(backend_db).close()
    _set_version(backend_db, 99)
    with pytest.raises(StoreError, match="newer than this code"):
        open_store(backend_db)


def test_sessions_span_their_turns(mem: Memory) -> None:
    mem.add_turns([turn(1, "a"), turn(5, "b")])
    stats = mem.store.stats()
    assert stats["sessions"] == 1 and stats["turns"] == 2

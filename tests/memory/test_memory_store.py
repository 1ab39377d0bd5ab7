from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from memory_testkit import T0, turn

from memory import Memory, MemoryTurn, Pose
from memory.embeddings import Embedder
from memory.sql_store import DuplicateTurnError
from memory.store import MIGRATIONS, SCHEMA_VERSION, Store, schema_version


def test_turn_round_trips_every_field(mem: Memory, tmp_path: Path) -> None:
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
    # The media file is copied next to the database, so the store owns it.
    assert got.turn.image_path is not None
    assert Path(got.turn.image_path).read_bytes() == b"jpeg"
    assert Path(got.turn.image_path).is_relative_to(mem.store.media_dir)
    assert got.turn.model_dump(exclude={"image_path"}) == original.model_dump(
        exclude={"image_path"}
    )


def test_wal_mode_and_schema_version(mem: Memory) -> None:
    db = sqlite3.connect(mem.store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert schema_version(db) == SCHEMA_VERSION


def test_duplicate_id_is_refused_and_nothing_written(mem: Memory) -> None:
    mem.add_turn(turn(1, "hello"))
    with pytest.raises(DuplicateTurnError, match="already in the store"):
        mem.add_turns([turn(2, "new"), turn(1, "again")])
    assert mem.store.get_turn("t2") is None  # the batch rolled back as a whole


def test_v1_file_is_upgraded_and_its_turns_become_searchable(
    tmp_path: Path, embedder: Embedder
) -> None:
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


def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Store(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE schema_version SET version = 99")
    db.close()
    with pytest.raises(RuntimeError, match="newer than this code"):
        Store(path)


def test_sessions_span_their_turns(mem: Memory) -> None:
    mem.add_turns([turn(1, "a"), turn(5, "b")])
    stats = mem.store.stats()
    assert stats["sessions"] == 1 and stats["turns"] == 2

"""The store under the conditions a robot meets: files it shares with other processes,
damaged or newer database files, people who ask to be forgotten, ids that look alike."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
from pathlib import Path

import pytest
from memory_testkit import BACKENDS, backend_location, is_postgres, turn

from memory import Memory
from memory.backends import open_store
from memory.cli import main
from memory.embeddings import Embedder
from memory.pg_store import PG_SCHEMA_VERSION
from memory.sql_store import StoreError
from memory.store import SCHEMA_VERSION, Store


def _open_at_once(location: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait()
    open_store(location).close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_processes_opening_a_new_database_at_once_all_succeed(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ctx = multiprocessing.get_context("fork")
    for attempt in range(12):  # the race is lost by about one opener in ten
        location = backend_location(request, backend, tmp_path / f"new{attempt}")
        barrier = ctx.Barrier(8)
        procs = [ctx.Process(target=_open_at_once, args=(location, barrier)) for _ in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 8, f"attempt {attempt}"
        store = open_store(location)
        assert store.stats()["schema_version"] == (
            PG_SCHEMA_VERSION if is_postgres(location) else SCHEMA_VERSION
        )
        store.close()


def test_similar_ids_keep_their_own_media_and_forget_spares_the_other(
    sqlite_mem: Memory, tmp_path: Path
) -> None:
    # SQLite only: it copies media into a folder per turn id (a fleet keeps references).
    mem = sqlite_mem
    bobs, alices = tmp_path / "bob.jpg", tmp_path / "alice.jpg"
    bobs.write_bytes(b"bob's photo")
    alices.write_bytes(b"alice's photo")
    shutil.copy(bobs, tmp_path / "photo-b.jpg")
    mem.add_turn(turn(1, "my bike", person="bob", id="x_1", image_path=str(bobs)))
    mem.add_turn(turn(2, "my cat", person="alice", id="x/1", image_path=str(alices)))
    bob = mem.store.get_turn("x_1")
    alice = mem.store.get_turn("x/1")
    assert bob is not None and alice is not None
    assert bob.turn.image_path != alice.turn.image_path
    assert Path(str(bob.turn.image_path)).read_bytes() == b"bob's photo"

    mem.forget_person("alice")
    assert Path(str(bob.turn.image_path)).read_bytes() == b"bob's photo"
    assert not Path(str(alice.turn.image_path)).exists()


def test_a_refused_duplicate_does_not_touch_the_media_of_the_turn_it_names(
    mem: Memory, tmp_path: Path
) -> None:
    first, second = tmp_path / "a" / "f.jpg", tmp_path / "b" / "f.jpg"
    for path, body in ((first, b"first"), (second, b"second")):
        path.parent.mkdir()
        path.write_bytes(body)
    mem.add_turn(turn(1, "the first", image_path=str(first)))
    with pytest.raises(ValueError, match="already in the store"):
        mem.add_turn(turn(1, "a duplicate", image_path=str(second)))
    stored = mem.store.get_turn("t1")
    assert stored is not None and Path(str(stored.turn.image_path)).read_bytes() == b"first"


def test_forget_leaves_no_word_of_the_person_in_the_files(
    tmp_path: Path, embedder: Embedder
) -> None:
    # SQLite only: the robot holds the bytes (file, log); PostgreSQL's are the server's.
    path = tmp_path / "robot.db"
    with Memory.open(path, embedder=embedder) as mem:
        mem.add_turns(
            [turn(i, f"filler about the weather number {i}", person="bob") for i in range(200)]
        )
        mem.add_turns(
            [
                turn(1000 + i, f"my quetzalcoatl figurine sits on shelf {i}", person="zelda",
                     session="zelda-morning")
                for i in range(50)
            ]
        )  # fmt: skip
        mem.add_turn(turn(2000, "bob keeps the xylophonist poster", person="bob"))
        assert mem.search("quetzalcoatl", person="zelda")
        mem.forget_person("zelda")
        assert mem.store.stats()["sessions"] == 1  # bob's
        # While the store is still open: the database file and its write-ahead log.
        blobs = [p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("robot.db")]
        assert not any(b"quetzalcoatl" in b or b"zelda" in b for b in blobs)
        assert mem.search("xylophonist poster", person="bob")[0].turn_id == "t2000"


def test_the_vector_index_follows_writes_of_another_connection(
    backend_db: str, embedder: Embedder
) -> None:
    path = backend_db
    agent = Memory.open(path, embedder=embedder)  # two connections, as two processes have
    tool = Memory.open(path, embedder=embedder)
    with agent, tool:
        agent.add_turn(turn(1, "I like tea", person="ana"))
        assert agent.search("tea", person="ana")  # the agent's index is built and in use
        tool.add_turn(turn(2, "the kayak hangs in the garage", person="ana"))
        hits = agent.search("where is my kayak?", person="ana")
        assert hits and hits[0].turn_id == "t2"
        tool.forget_person("ana")
        assert agent.search("where is my kayak?", person="ana") == []
        assert len(agent.index) == 0


def _truncated(tmp: Path, embedder: Embedder) -> Path:
    path = tmp / "t.db"
    store = Store(path)  # rows only: the damage is what matters, not the vectors
    store.add_turns([turn(i, f"turn number {i} " * 10) for i in range(600)], None, "none")
    store.close()
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)
    return path


def _newer(tmp: Path, embedder: Embedder) -> Path:
    path = tmp / "n.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    return path


def _garbage(tmp: Path, embedder: Embedder) -> Path:
    path = tmp / "g.db"
    path.write_bytes(b"this is not a database at all\n" * 200)
    return path


def _under_a_file(tmp: Path, embedder: Embedder) -> Path:
    (tmp / "plain").write_text("x")
    return tmp / "plain" / "m.db"


def _a_directory(tmp: Path, embedder: Embedder) -> Path:
    (tmp / "d.db").mkdir()
    return tmp / "d.db"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_truncated, "not a usable memory file"),
        (_newer, "newer than this code"),
        (_garbage, "not a usable memory file"),
        (_under_a_file, "cannot create folder"),
        (_a_directory, "is a directory"),
    ],
    ids=["truncated", "newer schema", "garbage", "folder is a file", "a directory"],
)
def test_a_database_that_cannot_be_used_is_one_line_exit_2(
    make: object, expected: str, tmp_path: Path, embedder: Embedder,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # SQLite files: damaged bytes and paths (the newer schema runs on both: test_memory_store).
    db = make(tmp_path, embedder)  # type: ignore[operator]
    before = db.read_bytes() if db.is_file() else None
    for command in (["stats"], ["search", "anything"], ["forget", "--person", "alice"]):
        assert main(["memory", "--db", str(db), *command]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and expected in err, err
    with pytest.raises(StoreError, match=expected):
        Memory.open(db, embedder=embedder)
    if before is not None:
        assert db.read_bytes() == before  # a damaged file is left as it was, for recovery

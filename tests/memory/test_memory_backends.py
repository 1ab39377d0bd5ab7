"""The memory promises that must hold on both backends: SQLite (one robot) and PostgreSQL +
pgvector (a fleet). Each test runs once per backend against a real database."""

from __future__ import annotations

from pathlib import Path

import pytest
from memory_testkit import turn

from bench.postgres import TestPostgres
from memory import Memory
from memory.cli import main
from memory.embeddings import Embedder
from memory.jsonl import export_jsonl, import_jsonl
from memory.sql_store import DuplicateTurnError
from memory.types import Pose


def _household(mem: Memory, tmp_path: Path) -> Path:
    frame = tmp_path / "ring.jpg"
    frame.write_bytes(b"jpeg")
    mem.add_turns(
        [
            turn(1, "My bank PIN is hidden under the blue vase.", person="alice"),
            turn(
                2,
                "Look at my new ring.",
                person="alice",
                image_caption="a gold ring",
                image_path=str(frame),
            ),
            turn(3, "The wifi password is on the fridge.", person="alice", shared=True),
            turn(4, "I hid the birthday present in the garage.", person="bob"),
        ]
    )
    return frame


def test_private_turns_are_never_offered_to_someone_else(mem: Memory, tmp_path: Path) -> None:
    _household(mem, tmp_path)
    for query in ("bank PIN blue vase", "ring", "where is something hidden"):
        ids = {r.turn_id for r in mem.search(query, person="bob", k=10)}
        assert ids <= {"t3", "t4"}
        ctx = mem.build_context(query, person="bob", budget_tokens=4000)
        assert {i.turn_id for i in ctx.items} <= {"t3", "t4", None}
    assert {r.turn_id for r in mem.search("password", person=None)} == {"t3"}
    assert "t1" in {r.turn_id for r in mem.search("bank PIN", person="alice")}
    assert mem.search("gold ring", person="alice")[0].turn_id == "t2"


def test_forget_person_removes_everything_and_survives_reopen(
    mem: Memory, backend_db: str, tmp_path: Path, embedder: Embedder
) -> None:
    _household(mem, tmp_path)
    mem.add_turn(turn(5, "Alice's own morning chat.", session="alice-morning"))
    stored_frame = mem.store.get_turn("t2")
    assert stored_frame is not None and stored_frame.turn.image_path is not None
    media = Path(stored_frame.turn.image_path)
    assert media.read_bytes() == b"jpeg"

    assert mem.forget_person("alice") == 4
    assert not media.exists()
    assert len(mem.index) == 1
    assert mem.store.lexical("bank PIN blue vase ring wifi morning").rowids.size == 0
    assert {r.turn_id for r in mem.search("bank PIN blue vase wifi ring", person="alice")} <= {"t4"}
    with Memory.open(backend_db, embedder=embedder) as again:
        assert [st.turn.id for st in again.store.iter_turns()] == ["t4"]
        assert again.store.latest_summary("alice") is None
        stats = again.store.stats()
        assert (stats["turns"], stats["vectors"], stats["people"]) == (1, 1, {"bob": 1})
        assert len(again.index) == 1
        # A session named after her goes with her; bob's is kept.
        assert set(again.store.session_dates()) == {"s1"}


def test_forget_clears_fts5_and_spares_the_callers_original(
    sqlite_mem: Memory, tmp_path: Path
) -> None:
    # SQLite only: FTS5 keeps its own rows, and the store copies media into its folder.
    original = _household(sqlite_mem, tmp_path)
    sqlite_mem.forget_person("alice")
    assert original.exists()  # the caller's file is not the store's to delete
    db = sqlite_mem.store._db  # type: ignore[attr-defined]
    assert db.execute("SELECT count(*) FROM turns_fts").fetchone()[0] == 1


def test_turn_round_trips_every_field_and_duplicates_are_refused(mem: Memory) -> None:
    t = turn(1, "Here is the red mug.", place="kitchen", pose=Pose(x=1.5, y=-2.0, yaw=0.3),
             transcript="here is the red mug", image_caption="a red mug",
             image_path="frames/1.jpg", interrupted=True, shared=True)  # fmt: skip
    mem.add_turn(t)
    got = mem.store.get_turn("t1")
    assert got is not None and got.turn.model_copy(update={"image_path": t.image_path}) == t
    assert str(got.turn.image_path).endswith("frames/1.jpg")  # a file elsewhere: a reference
    with pytest.raises(DuplicateTurnError):
        mem.add_turns([turn(2, "new"), turn(1, "again")])
    assert [st.turn.id for st in mem.store.iter_turns()] == ["t1"]  # all or nothing


def test_a_time_no_calendar_can_show_is_refused_and_nothing_written(mem: Memory) -> None:
    for bad in (float("nan"), float("inf"), 2.6e11):  # the last is past the year 9999
        with pytest.raises(ValueError, match="years 1 and 9999"):
            mem.add_turns([turn(1, "fine"), turn(2, "when?", time=bad)])
    assert mem.store.stats()["turns"] == 0


def test_a_media_file_another_persons_turn_names_survives_forgetting(
    mem: Memory, tmp_path: Path
) -> None:
    photo = tmp_path / "family.jpg"
    photo.write_bytes(b"everyone")
    mem.add_turns(
        [
            turn(1, "Our family photo.", person="alice", image_path=str(photo)),
            turn(2, "The same photo again.", person="bob", image_path=str(photo)),
        ]
    )
    mem.forget_person("alice")
    kept = mem.store.get_turn("t2")
    assert kept is not None and Path(str(kept.turn.image_path)).read_bytes() == b"everyone"


def test_export_import_moves_a_store_between_backends_exactly(
    tmp_path: Path, embedder: Embedder, postgres: TestPostgres
) -> None:
    lines = tmp_path / "a.jsonl"
    with Memory.open(str(tmp_path / "a.db"), embedder=embedder) as lite:
        lite.add_turns(
            [
                turn(1, "I parked on level three.", place="garage", pose=Pose(x=1, y=2)),
                turn(2, "Noted.", speaker="robot", person=None),
                turn(
                    3,
                    "Secret plan.",
                    person="bob",
                    image_path="frames/3.jpg",
                    image_caption="a map",
                    shared=True,
                ),
            ]
        )
        export_jsonl(lite, lines)
        original = [st.turn for st in lite.store.iter_turns()]
    url = postgres.new_database()
    # The CLI path a user takes: `omni-agent memory --db postgresql://... import`.
    assert main(["memory", "--db", url, "import", str(lines)]) == 0
    back = tmp_path / "b.jsonl"
    assert main(["memory", "--db", url, "export", str(back)]) == 0
    assert back.read_text() == lines.read_text()
    with Memory.open(str(tmp_path / "b.db"), embedder=embedder) as again:
        import_jsonl(again, back)
        assert [st.turn for st in again.store.iter_turns()] == original


def test_unreachable_database_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConnectionError, match="cannot reach memory database"):
        Memory.open("postgresql://nobody@/nowhere?host=/nonexistent-dir&connect_timeout=2")


def test_a_database_that_cannot_hold_the_schema_is_one_line_exit_2(
    postgres: TestPostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres.new_database("locked")
    postgres.psql("CREATE ROLE visitor LOGIN;")
    visitor = url.replace("postgres:@", "visitor:@")
    from omni_agent.cli import main as omni_main

    assert omni_main(["memory", "--db", visitor, "stats"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("omni-agent: error: memory database") and "\n" not in err
    assert "cannot hold the memory schema: permission denied" in err

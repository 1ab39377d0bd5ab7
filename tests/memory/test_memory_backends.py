"""The memory promises that must hold on both backends: SQLite (one robot) and PostgreSQL +
pgvector (a fleet). Each test runs once per backend against a real database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
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


def _household(mem: Memory, tmp_path: Path) -> None:
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


def test_private_turns_are_never_offered_to_someone_else(any_mem: Memory, tmp_path: Path) -> None:
    _household(any_mem, tmp_path)
    for query in ("bank PIN blue vase", "ring", "where is something hidden"):
        ids = {r.turn_id for r in any_mem.search(query, person="bob", k=10)}
        assert ids <= {"t3", "t4"}
        ctx = any_mem.build_context(query, person="bob", budget_tokens=4000)
        assert {i.turn_id for i in ctx.items} <= {"t3", "t4", None}
    assert {r.turn_id for r in any_mem.search("password", person=None)} == {"t3"}
    assert "t1" in {r.turn_id for r in any_mem.search("bank PIN", person="alice")}
    assert any_mem.search("gold ring", person="alice")[0].turn_id == "t2"


def test_forget_person_removes_everything_and_survives_reopen(
    any_mem: Memory, backend_db: str, tmp_path: Path, embedder: Embedder
) -> None:
    _household(any_mem, tmp_path)
    assert any_mem.forget_person("alice") == 3
    assert any_mem.search("bank PIN blue vase wifi ring", person="alice") == [
        r for r in any_mem.search("bank PIN blue vase wifi ring", person="alice")
        if r.turn_id == "t4"
    ]  # fmt: skip
    with Memory.open(backend_db, embedder=embedder) as again:
        assert [st.turn.id for st in again.store.iter_turns()] == ["t4"]
        assert again.store.latest_summary("alice") is None
        assert again.store.stats()["vectors"] == 1


def test_turn_round_trips_every_field_and_duplicates_are_refused(any_mem: Memory) -> None:
    t = turn(1, "Here is the red mug.", place="kitchen", pose=Pose(x=1.5, y=-2.0, yaw=0.3),
             transcript="here is the red mug", image_caption="a red mug",
             image_path="frames/1.jpg", interrupted=True, shared=True)  # fmt: skip
    any_mem.add_turn(t)
    got = any_mem.store.get_turn("t1")
    assert got is not None and got.turn.model_copy(update={"image_path": t.image_path}) == t
    assert str(got.turn.image_path).endswith("frames/1.jpg")  # a file elsewhere: a reference
    with pytest.raises(DuplicateTurnError):
        any_mem.add_turns([turn(2, "new"), turn(1, "again")])
    assert [st.turn.id for st in any_mem.store.iter_turns()] == ["t1"]  # all or nothing


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


WRITER = textwrap.dedent(
    """
    import sys
    from memory import Memory, MemoryTurn
    mem = Memory.open(sys.argv[1])
    i = 0
    while True:
        mem.add_turns([MemoryTurn(id=f"c{i}-{j}", speaker="user", person="alice",
                                  time=1.0e9 + i, text=f"turn {i} part {j} " * 20)
                       for j in range(3)])
        print(f"c{i}", flush=True)  # only after the commit returned
        i += 1
    """
)


def test_postgres_writer_killed_mid_write_loses_no_committed_turn(
    postgres: TestPostgres, embedder: Embedder
) -> None:
    url = postgres.new_database()
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    committed = []
    for line in proc.stdout:
        committed.append(line.strip())
        if len(committed) >= 15:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed += [line.strip() for line in proc.stdout if line.strip()]
    with Memory.open(url, embedder=embedder) as mem:
        ids = {st.turn.id for st in mem.store.iter_turns()}
        for batch in committed:
            assert {f"{batch}-{j}" for j in range(3)} <= ids
        batches = {i.rsplit("-", 1)[0] for i in ids}
        assert all({f"{b}-{j}" for j in range(3)} <= ids for b in batches)
        assert mem.store.stats()["vectors"] == len(ids)


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

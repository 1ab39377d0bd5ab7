from __future__ import annotations

from pathlib import Path

from memory_testkit import turn

from memory import Memory


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
    # Unknown speaker: only shared or unowned turns.
    assert {r.turn_id for r in mem.search("password", person=None)} == {"t3"}
    assert "t1" in {r.turn_id for r in mem.search("bank PIN", person="alice")}


def test_forget_person_removes_rows_fts_vectors_and_files(mem: Memory, tmp_path: Path) -> None:
    _household(mem, tmp_path)
    stored_frame = mem.store.get_turn("t2")
    assert stored_frame is not None and stored_frame.turn.image_path is not None
    copied = Path(stored_frame.turn.image_path)
    assert copied.is_file()

    assert mem.forget_person("alice") == 3
    assert copied.exists() is False
    assert (tmp_path / "ring.jpg").exists()  # the caller's original is not ours to delete
    db = mem.store._db
    assert db.execute("SELECT count(*) FROM turns WHERE person = 'alice'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM turns_fts").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM vectors").fetchone()[0] == 1
    assert len(mem.index) == 1
    assert mem.search("bank PIN", person="alice") == [] or all(
        r.turn.person != "alice" for r in mem.search("bank PIN", person="alice")
    )


def test_forget_survives_reopen(mem: Memory, tmp_path: Path) -> None:
    _household(mem, tmp_path)
    mem.forget_person("alice")
    path = mem.store.path
    mem.close()
    with Memory.open(path, embedder=mem.embedder) as again:
        assert again.store.stats()["people"] == {"bob": 1}
        assert len(again.index) == 1

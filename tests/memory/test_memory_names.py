"""Who owns a turn is a name compared by one rule, and being shared is a flag: no name,
however it is spelled, reaches another person's turns, and forgetting "alice" forgets
Alice. Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from memory_testkit import turn

from memory import Memory
from memory.cli import main
from memory.embeddings import Embedder
from memory.facade import embedding_text
from memory.names import InvalidPersonName
from memory.sql_store import StoreError

SENTINEL = "\x00shared"  # what an internal marker looked like: never a person


def _household(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "My bank PIN is hidden under the blue vase.", person="Alice"),
            turn(2, "The wifi password is on the fridge.", person="Alice", shared=True),
            turn(3, "I hid the birthday present in the garage.", person="Bob"),
            turn(4, "Good morning, everyone.", person=None, speaker="robot"),
        ]
    )


def _seen_by(mem: Memory, person: str | None) -> set[str]:
    seen: set[str] = set()
    for query in ("bank PIN blue vase", "birthday present garage", "wifi password", "secret"):
        seen |= {r.turn_id for r in mem.search(query, person=person, k=20)}
        ctx = mem.build_context(query, person=person, budget_tokens=4000)
        seen |= {i.turn_id for i in ctx.items if i.turn_id is not None}
    return seen


def test_the_sentinel_name_is_refused_by_add_turn(mem: Memory) -> None:
    _household(mem)
    with pytest.raises(InvalidPersonName, match="control characters"):
        mem.add_turn(turn(9, "Tell me every secret.", person=SENTINEL))
    assert mem.store.get_turn("t9") is None
    # Asking under that name shows only what everyone may see.
    assert _seen_by(mem, SENTINEL) <= {"t2", "t4"}


def test_the_sentinel_name_is_refused_by_import_in_one_line(
    backend_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"id": "a1", "speaker": "user", "person": "Alice", "time": 1.7e9, "text": "PIN 4411"},
        {"id": "x1", "speaker": "user", "person": SENTINEL, "time": 1.7e9 + 1, "text": "hi"},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["memory", "--db", backend_db, "import", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "control characters" in err and "nothing was imported" in err


def test_a_stored_sentinel_owner_sees_and_shows_nothing_of_others(
    backend_db: str, embedder: Embedder
) -> None:
    """A database written before names were checked may hold the marker as a name: its
    owner still sees only their own and shared turns, and their turns stay private."""
    with Memory.open(backend_db, embedder=embedder) as mem:
        _household(mem)
        odd = turn(5, "My diary is locked in the desk drawer.", person=SENTINEL)
        vec = embedder.embed([embedding_text(odd)])
        if backend_db.startswith("postgresql://"):  # PostgreSQL text cannot hold it at all
            with pytest.raises(StoreError, match="NUL character"):
                mem.store.add_turns([odd], np.asarray(vec), embedder.model_id)
            return
        mem.store.add_turns([odd], np.asarray(vec), embedder.model_id)  # past the name check
    with Memory.open(backend_db, embedder=embedder) as mem:
        assert _seen_by(mem, SENTINEL) <= {"t2", "t4", "t5"}
        for other in ("Alice", "Bob", None):
            assert "t5" not in _seen_by(mem, other)
            assert "t5" not in {r.turn_id for r in mem.search("diary desk drawer", person=other)}


def test_names_compare_whatever_the_letter_case(mem: Memory) -> None:
    _household(mem)
    assert "t1" in {r.turn_id for r in mem.search("bank PIN", person="alice")}
    assert "t1" in {r.turn_id for r in mem.search("bank PIN", person="ALICE")}
    assert "t1" not in {r.turn_id for r in mem.search("bank PIN", person="bob")}


def test_a_person_is_named_by_the_first_spelling_stored(mem: Memory) -> None:
    mem.add_turns(
        [turn(1, "Hi, I'm new here.", person="alice"), turn(2, "Me again.", person="Alice")]
    )
    mem.add_turn(turn(3, "And Bob.", person="Bob"))
    assert mem.store.people() == ["alice", "Bob"]
    assert mem.store.people_after(0) == ({"alice", "Bob"}, 3)


def test_forget_by_another_letter_case_removes_every_turn(
    backend_db: str, embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    with Memory.open(backend_db, embedder=embedder) as mem:
        _household(mem)
        mem.add_turn(turn(6, "My cat is called Miso.", person="alice"))
    assert main(["memory", "--db", backend_db, "forget", "--person", "ALICE"]) == 0
    assert "3 turns" in capsys.readouterr().out
    with Memory.open(backend_db, embedder=embedder) as mem:
        left = {st.turn.id for st in mem.store.iter_turns()}
        assert left == {"t3", "t4"}
        assert "t1" not in {r.turn_id for r in mem.search("bank PIN", person="Alice")}


def test_a_nul_character_for_postgresql_is_one_line_and_nothing_imported(
    postgres: object, tmp_path: Path, capsys: pytest.CaptureFixture[str], embedder: Embedder
) -> None:
    url = postgres.new_database("nul")  # type: ignore[attr-defined]
    lines = [
        {"id": "a1", "speaker": "user", "person": "Alice", "time": 1.7e9, "text": "fine"},
        {"id": "a2", "speaker": "user", "person": "Alice", "time": 1.7e9 + 1, "text": "a\x00b"},
    ]
    path = tmp_path / "nul.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["memory", "--db", url, "import", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "NUL character" in err
    with Memory.open(url, embedder=embedder) as mem:
        assert mem.store.n_turns == 0

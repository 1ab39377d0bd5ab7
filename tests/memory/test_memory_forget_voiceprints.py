"""`memory forget --person` removes the person's voiceprint too, with a SQLite memory and
with a PostgreSQL one (whose voiceprints live beside `memory.path`), whatever the letter
case; and says exactly what it could not remove."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from memory.voiceprints import VoiceprintStore
from omni_agent.cli import main


def _prints(path: Path, *people: str) -> None:
    store = VoiceprintStore(path)
    for seed, person in enumerate(people):
        store.add(person, np.random.default_rng(seed).random(256).astype(np.float32), 2.0)
    store.close()


def _people(path: Path) -> set[str]:
    store = VoiceprintStore(path)
    try:
        return set(store.all())
    finally:
        store.close()


def test_forget_deletes_the_voiceprint_in_either_store(
    backend_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = tmp_path / "robot.db"  # memory.path: the SQLite memory, or beside a PostgreSQL one
    prints = VoiceprintStore.beside(local)
    _prints(prints, "Alice", "Bob")
    argv = ["--set", f"memory.path={local}", "memory", "--db", backend_db]
    turns = tmp_path / "turns.jsonl"
    turns.write_text(
        "".join(
            json.dumps({"id": f"t{n}", "speaker": "user", "person": who, "text": text,
                        "time": float(n)}) + "\n"
            for n, (who, text) in enumerate([
                ("Alice", "My PIN is 4321."), ("alice", "I like green tea."),
                ("Bob", "My bike is blue."),
            ])
        )
    )  # fmt: skip
    assert main([*argv, "import", str(turns)]) == 0
    assert main([*argv, "forget", "--person", "ALICE"]) == 0
    out = capsys.readouterr().out
    assert "forgot ALICE: 2 turns" in out, out
    assert f"deleted ALICE's voiceprint from {prints}" in out
    assert "password" not in out
    assert _people(prints) == {"Bob"}
    assert main([*argv, "forget", "--person", "alice"]) == 0  # nothing left: said so
    assert f"no voiceprint of alice in {prints}" in capsys.readouterr().out


def test_forget_says_what_it_could_not_delete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "robot.db"
    VoiceprintStore.beside(db).write_bytes(b"not a database at all" * 100)
    assert main(["memory", "--db", str(db), "forget", "--person", "Alice"]) == 1
    captured = capsys.readouterr()
    assert "forgot Alice: 0 turns" in captured.out
    err = captured.err.strip()
    assert err.count("\n") == 0, err
    assert f"could not delete Alice's voiceprint from {VoiceprintStore.beside(db)}" in err


@pytest.mark.parametrize("command", ["forget", "export", "search q", "show"])
def test_a_person_name_with_control_characters_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    db = tmp_path / "robot.db"
    with pytest.raises(SystemExit) as exit_:
        main(["memory", "--db", str(db), *command.split(), "--person", "\x00shared"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "control characters" in err[-1]
    assert not db.exists()  # refused before any database was opened


def test_importing_a_nul_character_is_one_line_and_imports_nothing(
    backend_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from memory import Memory

    lines = [
        {"id": "t1", "speaker": "user", "text": "My spare key is under the mat.", "time": 1.0},
        {"id": "t2", "speaker": "user", "text": "The code is 12\u000034.", "time": 2.0},
    ]
    path = tmp_path / "turns.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["memory", "--db", backend_db, "import", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "NUL" in err and "nothing was imported" in err, err
    mem = Memory.open(backend_db)
    try:
        assert mem.store.get_turn("t1") is None
    finally:
        mem.close()

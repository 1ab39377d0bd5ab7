from __future__ import annotations

import json
from pathlib import Path

import pytest

from memory import Memory
from memory.cli import main
from memory.embeddings import Embedder
from memory.jsonl import JsonlError, export_jsonl, import_jsonl

LINES = [
    {
        "id": "corpus-17",
        "session": "d1",
        "speaker": "user",
        "person": "ana",
        "time": "2026-03-01T09:30:00Z",
        "text": "I parked the car on level three.",
        "place": "garage",
        "pose": {"x": 1.0, "y": 2.0, "yaw": 0.1},
    },
    {
        "id": "corpus-18",
        "session": "d1",
        "speaker": "robot",
        "person": "ana",
        "time": 1772357460.5,
        "text": "Level three, noted.",
    },
    {
        "id": "corpus-19",
        "session": "d1",
        "speaker": "user",
        "person": "ana",
        "time": 1772357500,
        "text": "This is my lunch box.",
        "image_caption": "a green lunch box",
        "image_path": "frames/19.jpg",
    },
]


def _write(path: Path, rows: list[dict[str, object]], extra: str = "") -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n" + extra)
    return path


def test_import_keeps_ids_and_export_round_trips(
    mem: Memory, tmp_path: Path, embedder: Embedder
) -> None:
    assert import_jsonl(mem, _write(tmp_path / "in.jsonl", LINES)) == 3
    assert mem.search("where is the car parked?", person="ana")[0].turn_id == "corpus-17"
    out = tmp_path / "out.jsonl"
    assert export_jsonl(mem, out) == 3

    with Memory.open(tmp_path / "copy.db", embedder=embedder) as copy:
        import_jsonl(copy, out)
        first = [st.turn for st in mem.store.iter_turns()]
        second = [st.turn for st in copy.store.iter_turns()]
        assert first == second
    assert first[0].time == 1772357400.0  # ISO 8601 with Z is UTC


def test_malformed_line_names_the_line_and_imports_nothing(mem: Memory, tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.jsonl", LINES, extra='{"id": "x", "speaker": "dog"}\n')
    with pytest.raises(JsonlError, match=r"bad.jsonl:4: "):
        import_jsonl(mem, bad)
    assert mem.store.stats()["turns"] == 0
    broken = _write(tmp_path / "broken.jsonl", LINES[:1], extra="{not json\n")
    with pytest.raises(JsonlError, match=r"broken.jsonl:2: not valid JSON"):
        import_jsonl(mem, broken)
    assert mem.store.stats()["turns"] == 0


def test_cli_import_search_json_stats_forget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "cli.db")
    src = _write(tmp_path / "in.jsonl", LINES)
    assert main(["memory", "--db", db, "import", str(src)]) == 0
    capsys.readouterr()
    assert main(["memory", "--db", db, "search", "car parked", "--person", "ana", "--json"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["turn_id"] == "corpus-17" and "reason" in first and "parts" in first
    assert main(["memory", "--db", db, "forget", "--person", "ana"]) == 0
    capsys.readouterr()
    assert main(["memory", "--db", db, "stats"]) == 0
    assert json.loads(capsys.readouterr().out)["turns"] == 0
    bad = _write(tmp_path / "bad.jsonl", [], extra="nope\n")
    assert main(["memory", "--db", db, "import", str(bad)]) == 2
    assert "bad.jsonl:2: not valid JSON" in capsys.readouterr().err  # line 1 is blank

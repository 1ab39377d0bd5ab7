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
    backend_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = backend_db
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


# Two people talking with each other and the robot over two sessions, each session with
# its own date in the past, in the form `export` writes (so the round trip is byte-exact).
CORPUS = [
    {"session": "s1", "date": 1683554160.0},
    {"id": "s1-0", "session": "s1", "speaker": "user", "person": "Caroline",
     "time": 1683554160.0, "text": "I went to an LGBTQ support group yesterday.",
     "shared": True},
    {"id": "s1-1", "session": "s1", "speaker": "user", "person": "Melanie",
     "time": 1683554161.0, "text": "That sounds wonderful, how was it?", "shared": True},
    {"id": "s1-2", "session": "s1", "speaker": "robot", "time": 1683554162.0,
     "text": "It is good to hear you found support, Caroline."},
    {"session": "s2", "date": 1684769400.0},
    {"id": "s2-0", "session": "s2", "speaker": "user", "person": "Melanie",
     "time": 1684769400.0, "place": "living room",
     "text": "I painted a sunrise over the lake last week.", "shared": True},
    {"id": "s2-1", "session": "s2", "speaker": "user", "person": "Caroline",
     "time": 1684769401.5, "text": "I would love to see it!", "interrupted": True,
     "shared": True},
]  # fmt: skip


def test_a_multi_party_multi_session_file_round_trips_exactly(
    backend_db: str, tmp_path: Path, embedder: Embedder
) -> None:
    src = tmp_path / "corpus.jsonl"
    src.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in CORPUS))
    out = tmp_path / "out.jsonl"
    with Memory.open(backend_db, embedder=embedder) as mem:
        assert import_jsonl(mem, src) == 5
        assert export_jsonl(mem, out) == 5
    assert out.read_text() == src.read_text()


def test_session_dates_place_untimed_turns_and_free_names_render(
    backend_db: str, tmp_path: Path, embedder: Embedder
) -> None:
    src = tmp_path / "corpus.jsonl"
    rows = [
        {"session": "D1", "date": "2023-05-08T13:56:00"},
        {"id": "D1:1", "session": "D1", "speaker": "user", "person": "Caroline",
         "shared": True, "text": "I adopted a dog named Biscuit."},
        {"id": "D1:2", "session": "D1", "speaker": "user", "person": "Melanie",
         "shared": True, "text": "Biscuit is a lovely name!"},
    ]  # fmt: skip
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Memory.open(backend_db, embedder=embedder) as mem:
        assert import_jsonl(mem, src) == 2
        times = [st.turn.time for st in mem.store.iter_turns()]
        assert times == [1683554160.0, 1683554161.0]  # the session's date, in file order
        ctx = mem.build_context("what is the dog called?", person="Melanie", budget_tokens=500)
        text = ctx.render()
        assert "[2023-05-08 13:56] Caroline: I adopted a dog named Biscuit." in text
        assert "Melanie: Biscuit is a lovely name!" in text
        out = tmp_path / "out.jsonl"
        export_jsonl(mem, out)
    with Memory.open(tmp_path / "b.db", embedder=embedder) as copy:
        import_jsonl(copy, out)
        copied = [st.turn for st in copy.store.iter_turns()]
    with Memory.open(backend_db, embedder=embedder) as mem:
        assert copied == [st.turn for st in mem.store.iter_turns()]


def test_the_documented_example_imports(tmp_path: Path, embedder: Embedder) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "memory.md").read_text()
    section = doc[doc.index("## JSONL format") :]
    example = section[section.index("```json\n") + 8 : section.index("```\n", 8)]
    src = tmp_path / "example.jsonl"
    src.write_text(example)
    with Memory.open(tmp_path / "a.db", embedder=embedder) as mem:
        assert import_jsonl(mem, src) == 6
        ctx = mem.build_context("what did Melanie paint?", person="Melanie", budget_tokens=800)
        assert "Melanie: I painted a sunrise" in ctx.render()
        assert "surprise party" not in ctx.render()  # Caroline's own turn

"""The memory bench's BM25 baseline plays by the same rules as our builder (the asker's
visibility, the budget, the exclusions), and the bench measures real corpora by category."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from memory_testkit import T0, turn

from bench.memory import BM25Turns
from memory import Memory, count_tokens
from memory.context import ContextRequest
from omni_agent.cli import main as omni_main


def test_bm25_baseline_sees_what_the_asker_may_see_within_budget(sqlite_mem: Memory) -> None:
    # SQLite only: the baseline ranks with the file's own FTS5 bm25.
    mem = sqlite_mem
    mem.add_turns(
        [
            turn(1, "The walnut cabinet key is in the teapot."),
            turn(2, "The walnut cabinet key is with Bob.", person="bob"),
            turn(3, "Walnut cabinet, everyone: key under the mat.", person="bob", shared=True),
            turn(4, "Walnut cabinet walnut cabinet, the second key."),
        ]
    )
    bm25 = BM25Turns(mem.store)
    ask = ContextRequest("walnut cabinet key", "alice", 40, T0 + 3600, False)
    ctx = bm25.build(ask)
    ids = [i.turn_id for i in ctx.items]
    assert "t2" not in ids and set(ids) <= {"t1", "t3", "t4"}
    assert ctx.tokens == sum(count_tokens(i.text) for i in ctx.items) <= 40
    ask = ContextRequest("walnut cabinet key", "alice", 400, T0 + 3600, False, frozenset({"t1"}))
    assert [i.turn_id for i in bm25.build(ask).items] == ["t3", "t4"]


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def test_bench_memory_corpus_measures_each_builder_by_category(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A corpus of two conversations (one gzip, one plain) goes through the import path;
    a question whose evidence is a user turn weeks back is recalled by our builder and
    BM25 at every budget, never by the window."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, suffix, fact, question in (
        ("a", ".gz", "My sister Ines lives in Porto now.", "Where does my sister Ines live?"),
        ("b", "", "I keep the spare bike key in the red tin.", "Where is the spare bike key?"),
    ):
        turns: list[dict[str, object]] = []
        for k in range(1, 26):
            for j, (speaker, text) in enumerate(
                [("user", fact if k == 1 else f"Day {k}: nothing much, some cooking."),
                 ("assistant", "That sounds good. " * 40)],
                start=1,
            ):  # fmt: skip
                turns.append(
                    {"id": f"S{k}:{j}", "session": f"S{k}", "speaker": speaker,
                     "time": f"2024-01-{k:02d}T10:00:0{j}", "text": text}
                )  # fmt: skip
        _write(corpus / f"{name}.turns.jsonl{suffix}", turns)
        _write(
            corpus / f"{name}.questions.jsonl{suffix}",
            [{"question": question, "evidence": ["S1:1"], "category": f"kind-{name}",
              "asked_at": "2024-03-01T10:00:00"}],
        )  # fmt: skip
    out, work = tmp_path / "out", tmp_path / "work"
    args = ["bench", "memory", "--corpus", str(corpus), "--out", str(out), "--json"]
    assert omni_main([*args, "--work", str(work)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == 2 and report["turns"] == 100
    assert report["imported"] == 2 and report["import_s"] > 0
    # A rerun with the same --work only measures: nothing imported, the same recall.
    assert omni_main([*args, "--work", str(work)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["imported"] == 0 and again["recall"] == report["recall"]
    assert report["questions_by_category"] == {"kind-a": 1, "kind-b": 1}
    for budget in ("1000", "2000", "4000"):
        for name, expected in (("ours", 1.0), ("bm25", 1.0), ("window", 0.0)):
            got = report["recall"][name][budget]
            assert got["all_evidence"]["all"] == expected, (name, budget)
            assert got["any_evidence"]["by_category"]["kind-b"] == expected
    assert (out / "report.json").is_file()


def test_bench_memory_corpus_refuses_a_folder_without_conversations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert omni_main(["bench", "memory", "--corpus", str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "holds no" in err

"""`omni-agent bench memory --corpus DIR`: evidence recall on real conversations.

Why a second recall bench: the generator (bench/dialogues.py) is ours, and a builder tuned
on it can learn its habits. A corpus of real histories keeps the tuning honest: a choice
counts only when it helps on both.

A corpus folder holds one pair of files per conversation, gzip or plain:
- `<name>.turns.jsonl[.gz]`: `{"id", "session", "speaker": "user" | "assistant",
  "time": ISO 8601, "text"}` in time order;
- `<name>.questions.jsonl[.gz]`: `{"question", "evidence": [turn ids], "category",
  "asked_at": ISO 8601}`.

Each conversation is imported through the documented JSONL path (`memory.jsonl`): the
user's turns carry one person, the `assistant` is the robot talking to that person (as
the agent stores its own replies). Every question is asked by that person at `asked_at`;
our builder, plain BM25 over turns and the recent window build a context at 1k/2k/4k
tokens, and a question counts as recalled when all (any) of its evidence turns are in it.
Imported stores are kept under `--work` when given, so a rerun only measures.
"""

from __future__ import annotations

import gzip
import io
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from memory.context import ContextRequest, ContextStrategy
from memory.facade import Memory
from memory.jsonl import add_imported, parse_lines

PERSON = "Sam"  # the user of every corpus conversation
BUDGETS = (1000, 2000, 4000)


class CorpusError(ValueError):
    """A corpus folder that cannot be measured: one line saying what is wrong."""


@dataclass(frozen=True)
class Question:
    question: str
    evidence: tuple[str, ...]
    category: str
    asked_at: float


@dataclass(frozen=True)
class Conversation:
    name: str
    turns_path: Path
    questions: tuple[Question, ...]


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open(encoding="utf-8")


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with _open(path) as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise CorpusError(f"{path}:{n}: not valid JSON ({e.msg})") from None


def _when(text: str) -> float:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def conversations(folder: Path, limit: int | None = None) -> list[Conversation]:
    """The conversations of a corpus folder, sorted by name (`limit`: a subset that takes
    conversations from each question category in turn)."""
    if not folder.is_dir():
        raise CorpusError(f"corpus {folder} is not a folder")
    found: list[Conversation] = []
    for turns in sorted(folder.glob("*.turns.jsonl*")):
        name = turns.name.split(".turns.jsonl")[0]
        qpath = next(iter(sorted(folder.glob(f"{name}.questions.jsonl*"))), None)
        if qpath is None:
            raise CorpusError(f"{turns} has no {name}.questions.jsonl[.gz] beside it")
        try:
            questions = tuple(
                Question(q["question"], tuple(q["evidence"]), q["category"], _when(q["asked_at"]))
                for q in _lines(qpath)
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CorpusError(f"{qpath}: a question lacks or mangles a field ({e})") from None
        found.append(Conversation(name, turns, questions))
    if not found:
        raise CorpusError(f"corpus {folder} holds no <name>.turns.jsonl[.gz] files")
    if not limit or limit >= len(found):
        return found
    # A subset for iterating: round-robin over the categories, so each kind is in it.
    by_kind: dict[str, list[Conversation]] = defaultdict(list)
    for conv in found:
        by_kind[conv.questions[0].category if conv.questions else ""].append(conv)
    queues = [by_kind[k] for k in sorted(by_kind)]
    picked: list[Conversation] = []
    while len(picked) < limit:
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    return sorted(picked, key=lambda c: c.name)


def import_lines(turns_path: Path) -> Iterator[str]:
    """The conversation as the documented import format: user turns are the person's,
    assistant turns the robot's words to them."""
    for row in _lines(turns_path):
        speaker = "user" if row["speaker"] == "user" else "robot"
        yield json.dumps(
            {
                "id": row["id"],
                "session": row.get("session"),
                "speaker": speaker,
                "person": PERSON,
                "time": row["time"],
                "text": row["text"],
            }
        )


def open_conversation(conv: Conversation, work: Path) -> Memory:
    """The conversation's memory: imported once, reopened when `work` already holds it."""
    db = work / f"{conv.name}.db"
    if db.exists():
        return Memory.open(db)
    partial = work / f"{conv.name}.db.partial"
    for stale in work.glob(f"{conv.name}.db.partial*"):
        stale.unlink()
    mem = Memory.open(partial)
    try:
        add_imported(mem, parse_lines(import_lines(conv.turns_path), str(conv.turns_path)), db)
    finally:
        mem.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    partial.rename(db)
    return Memory.open(db)


Builders = Callable[[Memory], dict[str, ContextStrategy]]


def corpus_recall(
    folder: Path,
    work: Path,
    builders: Builders,
    budgets: Callable[[str], tuple[int, ...]] = lambda name: BUDGETS,
    limit: int | None = None,
    progress: Callable[[int, str], Any] | None = None,
) -> dict[str, Any]:
    """All- and any-evidence recall per builder, budget and category on a corpus."""
    convs = conversations(folder, limit)
    work.mkdir(parents=True, exist_ok=True)
    hits: dict[tuple[str, int, str], list[tuple[int, int]]] = defaultdict(list)
    build_s: dict[str, list[float]] = defaultdict(list)
    n_turns = 0
    imported: list[float] = []  # seconds per conversation imported by this run
    bar = progress(sum(len(c.questions) for c in convs), "corpus questions") if progress else None
    for conv in convs:
        fresh = not (work / f"{conv.name}.db").exists()
        t = time.perf_counter()
        mem = open_conversation(conv, work)
        if fresh:
            imported.append(time.perf_counter() - t)
        with mem:
            n_turns += mem.store.n_turns
            chosen = builders(mem)
            for q in conv.questions:
                qvec = mem.embed_query(q.question)
                wanted = set(q.evidence)
                for name, builder in chosen.items():
                    for budget in budgets(name):
                        request = ContextRequest(
                            query=q.question,
                            person=PERSON,
                            budget=budget,
                            now=q.asked_at,
                            images=False,
                            query_vector=qvec,
                        )
                        t = time.perf_counter()
                        ctx = builder.build(request)
                        build_s[f"{name}@{budget}"].append(time.perf_counter() - t)
                        got = wanted & {i.turn_id for i in ctx.items}
                        hits[(name, budget, q.category)].append(
                            (int(got == wanted), int(bool(got)))
                        )
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    categories = sorted({c for (_, _, c) in hits})
    names = list(dict.fromkeys(n for (n, _, _) in hits))

    def rate(name: str, budget: int, which: int, category: str | None = None) -> float:
        vals = [
            v[which]
            for (n, b, c), vs in hits.items()
            if n == name and b == budget and category in (None, c)
            for v in vs
        ]
        return round(sum(vals) / len(vals), 3) if vals else float("nan")

    return {
        "corpus": str(folder),
        "conversations": len(convs),
        "questions": sum(len(c.questions) for c in convs),
        "turns": n_turns,
        "questions_by_category": {
            c: sum(1 for conv in convs for q in conv.questions if q.category == c)
            for c in categories
        },
        "recall": {
            name: {
                str(b): {
                    which: {
                        "all": rate(name, b, i),
                        "by_category": {c: rate(name, b, i, c) for c in categories},
                    }
                    for i, which in enumerate(("all_evidence", "any_evidence"))
                }
                for b in BUDGETS
                if (name, b, categories[0]) in hits
            }
            for name in names
        },
        "imported": len(imported),
        "import_s": round(sum(imported), 1),
        "import_s_p50": round(statistics.median(imported), 1) if imported else None,
        "build_ms_p50": {k: round(statistics.median(v) * 1e3, 2) for k, v in build_s.items()},
    }


def corpus_text(r: dict[str, Any]) -> list[str]:
    """The side-by-side table of a corpus run (all-evidence / any-evidence)."""
    cats = list(r["questions_by_category"])
    short = {c: c.replace("single-session-", "ss-").replace("-reasoning", "") for c in cats}
    lines = [
        f"corpus {r['corpus']}: {r['conversations']} conversations, {r['questions']} "
        f"questions, {r['turns']} turns; all-evidence / any-evidence",
    ]
    widths = [18, 9, *[max(9, len(short[c])) for c in cats]]
    lines.append(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(
                zip(["budget builder", "all", *[short[c] for c in cats]], widths, strict=True)
            )
        )
    )
    for name, by_budget in r["recall"].items():
        for budget, t in by_budget.items():
            a, y = t["all_evidence"], t["any_evidence"]
            cells = [f"{int(budget) // 1000}k {name}", f"{a['all']:.2f}/{y['all']:.2f}"]
            cells += [f"{a['by_category'][c]:.2f}/{y['by_category'][c]:.2f}" for c in cats]
            lines.append(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(cells, widths, strict=True))
                )
            )
    return lines

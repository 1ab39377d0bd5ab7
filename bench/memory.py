"""`omni-agent bench memory`: evidence recall at a token budget, and memory latency.

Recall: a generated long multi-session, multi-party dialogue (bench/dialogues.py) is
streamed into memory; at each probe every builder builds a context for the probe's
question and asker, and the probe counts as recalled when all its evidence turns are in
the context (any-evidence: at least one). Side by side, in one run: our builder (the
default `hybrid` strategy), plain BM25 over turns (SQLite FTS5 `bm25`, best first into the
same budget) and the sliding window, at 1k/2k/4k tokens, by kind and by distance.
`--ablate` adds our builder with each choice removed, and each choice added in turn to
the previous builder, at 2k (recall by kind, build latency at 10^5 turns).

Scale: stores of 10^3..10^5 turns (10^6 with --big). Bulk fill above 10^3 turns writes
synthetic vectors shaped like real ones (see `_fill`) instead of embedding every text;
latency queries and the ingest-rate writes use the real model. Retrieval and build
latency are measured with the query vector computed once per query beforehand, as the
agent does (its cost is reported separately as `embed_query`), on the store reopened
(`open_s`: what a robot waits for at start). `index recall` compares the vector index's
top 10 and top 250 (the semantic candidates of a query) with an exact scan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.dialogues import KINDS, Dialogue, bucket, bucket_names, generate
from memory.context import (
    SHARES,
    BudgetedStrategy,
    ContextRequest,
    ContextStrategy,
    Shares,
    count_tokens,
    render_turn,
)
from memory.facade import Memory, embedding_text
from memory.retrieval import Retriever, ScoreWeights
from memory.sql_store import key_of, owner_key, visible_where
from memory.store import Store, fts_query
from memory.types import Context, ContextItem
from memory.vectors import VectorIndex

BUDGETS = (1000, 2000, 4000)
COMPARED = ("ours", "bm25", "window")
ABLATION_BUDGET = 2000


class BM25Turns:
    """Baseline: plain BM25 over single turns (FTS5 `bm25`), best first into the budget.

    The asker's visibility rule is the store's (own, shared, unowned turns)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, check_same_thread=False)

    def build(self, request: ContextRequest) -> Context:
        match = fts_query(request.query)
        if match is None:
            return Context(items=[], tokens=0, budget=request.budget)
        who = visible_where("?", "t")  # the store's own rule
        rows = self.db.execute(
            "SELECT t.rowid FROM turns_fts JOIN turns t ON t.rowid = turns_fts.rowid "
            f"WHERE turns_fts MATCH ? AND {who} AND t.time <= ? "
            "ORDER BY bm25(turns_fts) LIMIT 200",
            (match, key_of(request.person), request.now if request.now is not None else 1e18),
        ).fetchall()
        turns = self.store.turns_by_rowid(r[0] for r in rows)
        used, chosen = 0, []
        for (rowid,) in rows:
            st = turns[rowid]
            if st.turn.id in request.exclude:
                continue
            text = render_turn(st.turn)
            cost = count_tokens(text)
            if used + cost <= request.budget:
                used += cost
                chosen.append((st.turn.time, st.turn.id, text))
        items = [
            ContextItem(kind="evidence", turn_id=i, text=text, reason="bm25")
            for _, i, text in sorted(chosen)
        ]
        return Context(items=items, tokens=used, budget=request.budget)


# -- the ablation: every choice of our builder, measured --------------------------------

BEFORE = Shares(summary=0.1, recent=0.3, evidence=True, backfill_recent=True, evidence_k=60)
BEFORE_WEIGHTS = ScoreWeights(
    lexical=0.3,
    person=0.05,
    speaker=0.0,
    link=0.0,
    named_people=False,
    candidates=100,
    hop_seeds=8,
    hop_terms=3,
    redundancy=0.0,
    robot_words=False,
)

Step = Callable[[Shares, ScoreWeights], tuple[Shares, ScoreWeights]]


def _choices(ours: Shares, weights: ScoreWeights) -> dict[str, tuple[Shares, ScoreWeights]]:
    """One entry per choice: the builder before it is applied -> after (cumulative).

    The first steps are the v3 tuning (generator v3), the `v4:` steps the tuning on the
    calibrated generator v4; the last row is our builder (`ours`, the default)."""

    def shares(**kw: object) -> Step:
        return lambda s, w: (replace(s, **kw), w)  # type: ignore[arg-type]

    def weighs(**kw: object) -> Step:
        return lambda s, w: (s, w.model_copy(update=kw))

    def both(*fs: Step) -> Step:
        def step(s: Shares, w: ScoreWeights) -> tuple[Shares, ScoreWeights]:
            for f in fs:
                s, w = f(s, w)
            return s, w

        return step

    steps = [
        ("compact rendering", shares(compact=True)),
        ("budget shares", shares(summary=0.05, recent=0.15)),
        ("more candidates", both(shares(evidence_k=150), weighs(candidates=250))),
        ("speaker prior", weighs(speaker=0.1)),
        ("dedupe", shares(dedupe=True)),
        ("named people", weighs(named_people=True)),
        ("name hops", both(shares(hops=True), weighs(link=weights.link))),
        ("sequels", shares(sequels=True)),
        ("v4: dedupe per person", shares(dedupe_by_person=True)),
        ("v4: recent share 0.05", shares(recent=ours.recent)),
        ("v4: no name hops", shares(hops=False)),
        ("v4: person prior x3", weighs(person=weights.person)),
        ("v4: lexical 0.15", weighs(lexical=weights.lexical)),
        ("v4: speaker prior x2", weighs(speaker=weights.speaker)),
        ("v4: redundancy 0.3", weighs(redundancy=0.3)),
        (
            "v4: name hops, 2 results, 1 name",
            both(
                shares(hops=ours.hops),
                weighs(hop_seeds=weights.hop_seeds, hop_terms=weights.hop_terms),
            ),
        ),
        # Judged on the generator and on real conversations (--corpus) together.
        ("real: the robot's words", weighs(robot_words=weights.robot_words)),
        ("real: redundancy 0.15", weighs(redundancy=weights.redundancy)),
    ]
    out: dict[str, tuple[Shares, ScoreWeights]] = {"before (v1 hybrid)": (BEFORE, BEFORE_WEIGHTS)}
    s, w = BEFORE, BEFORE_WEIGHTS
    for name, step in steps:
        s, w = step(s, w)
        out[f"+ {name}"] = (s, w)
    # Tried and not kept: each on top of the final builder.
    out["tried: + neighbours"] = (replace(s, neighbours=5), w)
    out["tried: + feedback scan"] = (replace(s, feedback=True), w)
    out["tried: name hops, 8 results, 3 names"] = (
        s,
        w.model_copy(update={"hop_seeds": 8, "hop_terms": 3}),
    )
    out["tried: redundancy 0.2"] = (s, w.model_copy(update={"redundancy": 0.2}))
    out["tried: redundancy 0.1"] = (s, w.model_copy(update={"redundancy": 0.1}))
    out["tried: redundancy 0.5"] = (s, w.model_copy(update={"redundancy": 0.5}))
    out["tried: dedupe by text only"] = (replace(s, dedupe_by_person=False), w)
    out["tried: recency x4"] = (s, w.model_copy(update={"recency": 4 * w.recency}))
    out["tried: no summary, no recent"] = (replace(s, recent=0.0, summary=0.0), w)
    out["tried: person x5/3"] = (s, w.model_copy(update={"person": 0.25}))
    out["tried: semantic 0.8"] = (s, w.model_copy(update={"semantic": 0.8}))
    out["tried: 500 candidates"] = (s, w.model_copy(update={"candidates": 500}))
    # Structural retrieval, judged on the generator and on a real corpus (--corpus).
    out["tried: clause sub-queries"] = (s, w.model_copy(update={"subqueries": 1.0}))
    out["tried: clause sub-queries x0.9"] = (s, w.model_copy(update={"subqueries": 0.9}))
    out["tried: word hops"] = (s, w.model_copy(update={"hop_words": True}))
    out["tried: word hops, 2 words"] = (
        s,
        w.model_copy(update={"hop_words": True, "hop_terms": 2}),
    )
    out["tried: sessions, 3 best lift 0.5 + fill"] = (replace(s, sessions=3), w)
    out["tried: sessions, 5 best lift 0.2"] = (
        replace(s, sessions=5, session_weight=0.2, session_fill=False),
        w,
    )
    return out


def _builders(mem: Memory, ablate: bool) -> dict[str, ContextStrategy]:
    assert isinstance(mem.store, Store), "the recall bench measures the SQLite backend"
    builders: dict[str, ContextStrategy] = {
        "ours": mem.strategy,
        "bm25": BM25Turns(mem.store),
        "window": BudgetedStrategy(mem.store, mem.retriever, SHARES["window"]),
    }
    if ablate:
        for name, (shares, weights) in _choices(SHARES["hybrid"], mem.retriever.weights).items():
            retriever = Retriever(mem.store, mem.index, mem.embedder, weights)
            builders[name] = BudgetedStrategy(mem.store, retriever, shares)
    return builders


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    # A bar only for a person watching: never in logs, pipes or --json output.
    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=not sys.stdout.isatty())


def recall_bench(dialogue: Dialogue, workdir: Path, ablate: bool = False) -> dict[str, Any]:
    mem = Memory.open(workdir / "recall.db")
    builders = _builders(mem, ablate)
    # (builder, budget, kind, bucket) -> [(all evidence inside, any evidence inside)]
    hits: dict[tuple[str, int, str, str], list[tuple[int, int]]] = defaultdict(list)
    build_s: dict[str, list[float]] = defaultdict(list)
    stored = 0
    bar = _progress(len(dialogue.probes), "recall probes")
    for probe in dialogue.probes:
        if probe.ask_index > stored:
            new = dialogue.turns[stored : probe.ask_index]
            for start in range(0, len(new), 100):
                chunk = new[start : start + 100]
                mem.add_turns(chunk)
                if (stored + start) // 100 != (stored + start + len(chunk)) // 100:
                    asyncio.run(mem.consolidate())  # rolling summaries, as the agent would
            stored = probe.ask_index
        now = dialogue.turns[stored - 1].time + 30
        qvec = mem.embed_query(probe.question)  # once per question, as the agent does
        wanted = set(probe.evidence_ids)
        for name, builder in builders.items():
            budgets = BUDGETS if name in COMPARED else (ABLATION_BUDGET,)
            for budget in budgets:
                request = ContextRequest(
                    query=probe.question,
                    person=probe.person,
                    budget=budget,
                    now=now,
                    images=False,
                    query_vector=qvec,
                )
                t = time.perf_counter()
                ctx = builder.build(request)
                build_s[f"{name}@{budget}"].append(time.perf_counter() - t)
                if ctx.tokens > budget:
                    raise RuntimeError(f"{name} exceeded its budget: {ctx.tokens} > {budget}")
                got = wanted & {item.turn_id for item in ctx.items}
                key = (name, budget, probe.kind, bucket(probe.distance))
                hits[key].append((int(got == wanted), int(bool(got))))
        bar.update(1)
    bar.close()
    mem.close()

    def rate(
        name: str, budget: int, which: int, kind: str | None = None, b: str | None = None
    ) -> float:
        vals = [
            v[which]
            for (n, bu, kd, bk), vs in hits.items()
            if n == name and bu == budget and kind in (None, kd) and b in (None, bk)
            for v in vs
        ]
        return round(sum(vals) / len(vals), 3) if vals else float("nan")

    def table(name: str, budget: int) -> dict[str, Any]:
        return {
            which: {
                "all": rate(name, budget, i),
                "by_kind": {k: rate(name, budget, i, kind=k) for k in KINDS},
                "by_distance": {b: rate(name, budget, i, b=b) for b in bucket_names()},
            }
            for i, which in enumerate(("all_evidence", "any_evidence"))
        }

    probes = dialogue.probes
    owners = {t.id: t.person for t in dialogue.turns}
    return {
        "turns": len(dialogue.turns),
        "probes": len(probes),
        "probes_by_kind": {k: sum(1 for p in probes if p.kind == k) for k in KINDS},
        "probes_by_distance": {
            b: sum(1 for p in probes if bucket(p.distance) == b) for b in bucket_names()
        },
        "probes_multi_evidence": sum(1 for p in probes if len(p.evidence_ids) > 1),
        "probes_third_person": sum(1 for p in probes if owners[p.evidence_ids[0]] != p.person),
        "recall": {name: {str(b): table(name, b) for b in BUDGETS} for name in COMPARED},
        "ablation": {
            name: table(name, ABLATION_BUDGET) for name in builders if name not in COMPARED
        },
        "build_ms_p50": {k: round(statistics.median(v) * 1e3, 2) for k, v in build_s.items()},
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50_ms": round(statistics.median(s) * 1e3, 3),
        "p99_ms": round(s[min(len(s) - 1, int(len(s) * 0.99))] * 1e3, 3),
    }


def _fill(mem: Memory, dialogue: Dialogue, size: int, real_until: int) -> None:
    """Fill a store to `size` turns, reusing the dialogue's texts with fresh ids.

    Past `real_until` turns the vectors are synthetic but shaped like real ones: the real
    embedding of the reused text plus a third of another turn's, plus a little noise. Random
    unit vectors would spread evenly and flatter any index; these crowd around the same
    sentences, as a long life of similar conversations does.
    """
    turns = dialogue.turns
    rng = np.random.default_rng(0)
    real = mem.embedder.embed([embedding_text(t) for t in turns]) if size > real_until else None
    bar = _progress(size, f"fill {size:.0e}")
    batch = 2000
    for start in range(0, size, batch):
        chunk = [
            turns[i % len(turns)].model_copy(
                update={
                    "id": f"s{i:07d}",
                    "time": turns[0].time + i * 20.0,
                    "session": f"f{i // 24:06d}",
                    "person": "alice",
                    "shared": False,
                    "image_path": None,
                }
            )
            for i in range(start, min(size, start + batch))
        ]
        if real is None or start < real_until:
            mem.add_turns(chunk)
        else:
            own = real[np.arange(start, start + len(chunk)) % len(turns)]
            other = real[rng.integers(0, len(turns), len(chunk))]
            noise = rng.standard_normal(own.shape).astype(np.float32)
            vecs = own + 0.35 * other + 0.03 * noise
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            rowids = mem.store.add_turns(chunk, vecs, mem.embedder.model_id)
            mem.index.add(rowids, (owner_key(t.person, t.shared) for t in chunk), vecs)
        bar.update(len(chunk))
    bar.close()


def _index_recall(mem: Memory, vectors: list[np.ndarray], k: int) -> float:
    """Share of the exact top `k` (by score) that the index's search returns."""
    index = mem.index
    assert isinstance(index, VectorIndex), "the scale bench measures the in-process index"
    held = index.rowids()
    everything = index.vectors(["alice"], held)
    everything = everything[np.any(everything, axis=1)]  # only alice's partition is asked
    found = []
    for v in vectors:
        exact = np.einsum("ij,j->i", everything, v)
        kth = np.partition(exact, len(exact) - k)[len(exact) - k] if len(exact) > k else -1.0
        got = mem.index.search(v, ["alice"], k)
        found.append(sum(score >= kth - 1e-6 for _, score in got) / min(k, len(exact)))
    return round(float(np.mean(found)), 3)


def scale_bench(
    dialogue: Dialogue,
    sizes: list[int],
    workdir: Path,
    queries: int = 200,
    writes: int = 100,
    ablate_at: int | None = None,
) -> dict[str, Any]:
    questions = [p.question for p in dialogue.probes[:queries]] or ["where are my keys"]
    out: dict[str, Any] = {}
    for size in sizes:
        mem = Memory.open(workdir / f"scale-{size}.db")
        t0 = time.perf_counter()
        _fill(mem, dialogue, size, real_until=1000)
        fill_s = time.perf_counter() - t0
        mem.close()
        t0 = time.perf_counter()  # what a robot waits for at start: rows read, index built
        mem = Memory.open(workdir / f"scale-{size}.db")
        open_s = time.perf_counter() - t0
        now = mem.store.recent_turns("alice", 1)[0].turn.time + 30
        embed_t, search_t, build_t = [], [], []
        vectors = []
        for q in questions:
            t = time.perf_counter()
            vectors.append(mem.embed_query(q))
            embed_t.append(time.perf_counter() - t)
        for q, v in zip(questions, vectors, strict=True):
            t = time.perf_counter()
            mem.search(q, person="alice", k=10, now=now, query_vector=v)
            search_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            mem.build_context(q, person="alice", budget_tokens=2000, now=now, query_vector=v)
            build_t.append(time.perf_counter() - t)
        candidates = mem.retriever.weights.candidates
        row: dict[str, Any] = {
            "embed_query": _percentiles(embed_t),
            "search": _percentiles(search_t),
            "build_context_2k": _percentiles(build_t),
            "open_s": round(open_s, 1),
            "index_recall_10": _index_recall(mem, vectors[:50], 10),
            f"index_recall_{candidates}": _index_recall(mem, vectors[:50], candidates),
        }
        if ablate_at == size:
            row["ablation_build_2k"] = {}
            for name, builder in _builders(mem, True).items():
                samples = []
                for q, v in zip(questions[:60], vectors, strict=False):
                    request = ContextRequest(q, "alice", 2000, now, False, query_vector=v)
                    t = time.perf_counter()
                    builder.build(request)
                    samples.append(time.perf_counter() - t)
                row["ablation_build_2k"][name] = _percentiles(samples)
        # Ingest: single durable add_turn calls (embedding + commit + fsync), the agent's path.
        base = dialogue.turns
        t = time.perf_counter()
        for i in range(writes):
            src = base[i % len(base)]
            mem.add_turn(
                src.model_copy(update={"id": f"w{i:06d}", "session": None, "image_path": None})
            )
        ingest_s = time.perf_counter() - t
        row.update(
            {
                "ingest_turns_per_s": round(writes / ingest_s, 1),
                "add_turn_ms": round(ingest_s / writes * 1e3, 2),
                "fill_s": round(fill_s, 1),
                "synthetic_vectors": max(0, size - 1000),
            }
        )
        out[str(size)] = row
        mem.close()
    return out


def plots(report: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: list[str] = []
    if "recall" in report:
        files += _recall_plots(report["recall"]["recall"], out, plt)
    files.append(_latency_plot(report["scale"], out, plt))
    return files


def _recall_plots(rec: dict[str, Any], out: Path, plt: Any) -> list[str]:
    files = []
    fig, axes = plt.subplots(1, len(BUDGETS), figsize=(4 * len(BUDGETS), 3.5), sharey=True)
    for ax, budget in zip(axes, BUDGETS, strict=True):
        for name, style in zip(COMPARED, ("o-", "s--", "^:"), strict=True):
            d = rec[name][str(budget)]["all_evidence"]["by_distance"]
            ax.plot(list(d), list(d.values()), style, label=name)
        ax.axhline(0.9, color="grey", lw=0.8, ls=":")
        ax.set_title(f"budget {budget} tokens")
        ax.set_xlabel("distance (turns)")
        ax.tick_params(axis="x", rotation=45)
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("all-evidence recall")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "recall_by_distance.png", dpi=110)
    files.append(str(out / "recall_by_distance.png"))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(COMPARED)
    for i, name in enumerate(COMPARED):
        d = rec[name]["2000"]["all_evidence"]["by_kind"]
        ax.bar(np.arange(len(d)) + i * width, list(d.values()), width, label=name)
    ax.set_xticks(np.arange(len(KINDS)) + width, list(KINDS))
    ax.set_ylabel("all-evidence recall at 2k")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "recall_by_kind.png", dpi=110)
    files.append(str(out / "recall_by_kind.png"))
    plt.close(fig)
    return files


def _latency_plot(scale: dict[str, Any], out: Path, plt: Any) -> str:
    sizes = [int(s) for s in scale]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, style in (("search", "o-"), ("build_context_2k", "s--"), ("embed_query", "^:")):
        ax.plot(sizes, [scale[str(s)][key]["p50_ms"] for s in sizes], style, label=f"{key} p50")
    ax.axhline(10, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("stored turns")
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "latency_by_size.png", dpi=110)
    plt.close(fig)
    return str(out / "latency_by_size.png")


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def summary_text(report: dict[str, Any]) -> str:
    """The side-by-side tables a person reads at the end of a run."""
    lines = _recall_text(report["recall"]) if "recall" in report else []
    lines.append(
        "latency (p50 / p99 ms), query vector computed once beforehand; "
        "index recall: share of the exact top 10 / top 250 the vector index returns"
    )
    widths3 = [10, 16, 16, 18, 10, 8, 14]
    head = ["turns", "embed_query", "search", "build_context_2k", "add_turn", "open s"]
    lines.append(_row([*head, "index recall"], widths3))
    for size, row in report["scale"].items():
        cells = [f"{int(size):.0e}"]
        for key in ("embed_query", "search", "build_context_2k"):
            cells.append(f"{row[key]['p50_ms']:.1f} / {row[key]['p99_ms']:.1f}")
        wide = [
            v for k, v in row.items() if k.startswith("index_recall_") and k != "index_recall_10"
        ]
        recall = f"{row['index_recall_10']:.2f} / {wide[0]:.2f}" if wide else ""
        lines.append(
            _row([*cells, f"{row['add_turn_ms']:.1f}", f"{row['open_s']}", recall], widths3)
        )
        for name, p in row.get("ablation_build_2k", {}).items():
            lines.append(f"    build 2k, {name}: {p['p50_ms']:.1f} / {p['p99_ms']:.1f}")
    return "\n".join(lines)


def _recall_text(r: dict[str, Any]) -> list[str]:
    lines = [
        f"recall: {r['turns']} turns, {r['probes']} probes "
        f"({r['probes_multi_evidence']} with 2-4 evidence turns); all-evidence / any-evidence",
    ]
    cols = ["all", *KINDS, *bucket_names()]
    widths = [18, *[max(9, len(c)) for c in cols]]
    lines.append(_row(["budget builder", *cols], widths))
    for budget in BUDGETS:
        for name in COMPARED:
            t = r["recall"][name][str(budget)]
            cells = [f"{budget // 1000}k {name}"]
            for col in cols:
                a, y = t["all_evidence"], t["any_evidence"]
                if col == "all":
                    cells.append(f"{a['all']:.2f}/{y['all']:.2f}")
                elif col in KINDS:
                    cells.append(f"{a['by_kind'][col]:.2f}/{y['by_kind'][col]:.2f}")
                else:
                    cells.append(f"{a['by_distance'][col]:.2f}/{y['by_distance'][col]:.2f}")
            lines.append(_row(cells, widths))
    if r["ablation"]:
        lines.append(f"ablation at {ABLATION_BUDGET} tokens (all-evidence), build p50 ms")
        widths2 = [28, 6, *[max(9, len(k)) for k in KINDS], 9]
        lines.append(_row(["builder", "all", *KINDS, "build ms"], widths2))
        for name, t in r["ablation"].items():
            a = t["all_evidence"]
            ms = r["build_ms_p50"].get(f"{name}@{ABLATION_BUDGET}", float("nan"))
            cells = [name, f"{a['all']:.3f}", *[f"{a['by_kind'][k]:.3f}" for k in KINDS]]
            lines.append(_row([*cells, f"{ms:.1f}"], widths2))
    return lines


def run(
    out: Path, sizes: list[int], quick: bool, ablate: bool, recall: bool = True
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    dialogue = generate(n_turns=1000 if quick else 2000)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        report: dict[str, Any] = {
            "quick": quick,
            "generator": "v4",
            "synthetic_vectors": "real text + 0.35 other + noise",
        }
        if recall:
            t = time.perf_counter()
            report["recall"] = recall_bench(dialogue, work, ablate)
            report["recall"]["seconds"] = round(time.perf_counter() - t, 1)
        ablate_at = 100_000 if 100_000 in sizes else max(sizes)
        report["scale"] = scale_bench(
            dialogue,
            sizes,
            work,
            queries=50 if quick else 200,
            writes=30 if quick else 100,
            ablate_at=ablate_at if ablate else None,
        )
    report["targets"] = {
        "search_p50_ms": {s: v["search"]["p50_ms"] for s, v in report["scale"].items()},
        "build_p50_ms": {s: v["build_context_2k"]["p50_ms"] for s, v in report["scale"].items()},
    }
    if recall:
        ours = report["recall"]["recall"]["ours"]["2000"]["all_evidence"]
        report["targets"]["all_evidence_recall_2k"] = ours["all"]
        report["targets"]["multi_hop_recall_2k"] = ours["by_kind"]["multi-hop"]
    report["plots"] = plots(report, out)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(s)) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of sizes: {text!r}") from None
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError(f"sizes must be at least 100 turns: {text!r}")
    return sizes


def register_bench(bench_subparsers: Any) -> None:
    """Add `memory` to `omni-agent bench`."""
    p = bench_subparsers.add_parser("memory", help="memory recall at budget, latency, ingest")
    p.add_argument("--out", default="runs/bench-memory", help="report folder")
    p.add_argument(
        "--sizes", type=_sizes, default="1e3,1e4,1e5", help="store sizes, comma separated"
    )
    p.add_argument("--quick", action="store_true", help="1000-turn dialogue, sizes up to 1e4")
    p.add_argument("--big", action="store_true", help="also measure 1e6 stored turns")
    p.add_argument("--ablate", action="store_true", help="also measure each choice of our builder")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-recall", action="store_true", help="latency only (e.g. with --big)")
    p.add_argument(
        "--corpus",
        type=Path,
        help="measure recall on a folder of real conversations instead (bench/memory_corpus.py)",
    )
    p.add_argument("--limit", type=int, help="with --corpus: only the first N conversations")
    p.add_argument(
        "--work", type=Path, help="with --corpus: keep the imported stores here (reruns reuse)"
    )
    p.set_defaults(func=_main)


def corpus_run(
    folder: Path, out: Path, ablate: bool, limit: int | None, work: Path | None
) -> dict[str, Any]:
    """Recall of ours, BM25 and the window on a real corpus (`--ablate`: every choice)."""
    from bench.memory_corpus import corpus_recall

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-memory-corpus-") as tmp:
        report = corpus_recall(
            folder, work or Path(tmp), lambda m: _builders(m, ablate),
            budgets=lambda name: BUDGETS if name in COMPARED else (ABLATION_BUDGET,),
            limit=limit, progress=_progress,
        )  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _main(args: argparse.Namespace) -> int:
    if args.corpus is not None:
        from bench.memory_corpus import CorpusError, corpus_text

        try:
            report = corpus_run(args.corpus, Path(args.out), args.ablate, args.limit, args.work)
        except CorpusError as e:
            print(f"omni-agent bench memory: error: {e}", file=sys.stderr)
            return 2
        print(json.dumps(report, indent=2) if args.json else "\n".join(corpus_text(report)))
        return 0
    sizes: list[int] = list(args.sizes)
    if args.quick:
        sizes = [s for s in sizes if s <= 10_000] or [1000]
    if args.big and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    report = run(Path(args.out), sizes, args.quick, args.ablate, not args.no_recall)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(summary_text(report))
        print(f"report: {Path(args.out) / 'report.json'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    register_bench(parser.add_subparsers(dest="bench", required=True))
    ns = parser.parse_args()
    raise SystemExit(ns.func(ns))

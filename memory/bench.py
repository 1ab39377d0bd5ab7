"""`omni-agent bench memory`: evidence recall at budget, retrieval latency, ingest rate.

Recall: a generated multi-day dialogue is streamed into memory; at each probe the
context is built for the probe's question and person, and the probe counts as recalled
when its evidence turn is among the context items. The hybrid builder is compared with
a sliding window over the same budget.

Scale: stores of 10^3..10^5 turns (10^6 with --big). Bulk fill above 10^3 turns writes
synthetic random unit vectors instead of embedding every text (said in the report);
latency queries and the ingest-rate writes use the real model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from memory.context import make_strategy
from memory.dialogues import BUCKETS, KINDS, Dialogue, bucket, generate
from memory.facade import Memory
from memory.store import owner_key

BUDGETS = (1000, 2000, 4000)
BUILDERS = ("hybrid", "window", "retrieval", "summary")


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    # disable=None: a bar on a terminal only; piped into a log it would write every frame
    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=None)


def recall_bench(dialogue: Dialogue, workdir: Path) -> dict[str, Any]:
    mem = Memory.open(workdir / "recall.db")
    builders = {name: make_strategy(name, mem.store, mem.retriever) for name in BUILDERS}
    hits: dict[tuple[str, int, str, str, bool], list[int]] = defaultdict(list)
    stored = 0
    bar = _progress(len(dialogue.probes), "recall probes")
    from memory.context import ContextRequest

    for probe in dialogue.probes:
        if probe.ask_index > stored:
            new = dialogue.turns[stored : probe.ask_index]
            for start in range(0, len(new), 100):
                mem.add_turns(new[start : start + 100])
                if (stored + start) // 100 != (
                    stored + start + len(new[start : start + 100])
                ) // 100:
                    asyncio.run(mem.consolidate())  # rolling summaries, as the agent would
            stored = probe.ask_index
        now = dialogue.turns[stored - 1].time + 30
        for budget in BUDGETS:
            for name, builder in builders.items():
                ctx = builder.build(
                    ContextRequest(
                        query=probe.question,
                        person=probe.person,
                        budget=budget,
                        now=now,
                        images=False,
                    )
                )
                assert ctx.tokens <= budget
                got = int(any(item.turn_id == probe.evidence_id for item in ctx.items))
                key = (name, budget, bucket(probe.distance), probe.kind, probe.updated)
                hits[key].append(got)
        bar.update(1)
    bar.close()
    mem.close()

    def rate(
        name: str,
        budget: int,
        b: str | None = None,
        kind: str | None = None,
        updated: bool | None = None,
    ) -> float:
        vals = [
            v
            for (n, bu, bk, kd, up), vs in hits.items()
            if n == name
            and bu == budget
            and (b is None or bk == b)
            and (kind is None or kd == kind)
            and (updated is None or up == updated)
            for v in vs
        ]
        return round(sum(vals) / len(vals), 4) if vals else float("nan")

    bucket_names = [bucket(lo) for lo, _ in BUCKETS]
    kinds = list(KINDS)
    counts = {b: sum(1 for p in dialogue.probes if bucket(p.distance) == b) for b in bucket_names}
    return {
        "turns": len(dialogue.turns),
        "probes": len(dialogue.probes),
        "probes_by_distance": counts,
        "probes_by_kind": {k: sum(1 for p in dialogue.probes if p.kind == k) for k in kinds},
        "probes_updated": sum(1 for p in dialogue.probes if p.updated),
        "recall": {
            name: {
                str(budget): {
                    "all": rate(name, budget),
                    "by_distance": {b: rate(name, budget, b=b) for b in bucket_names},
                    "by_kind": {k: rate(name, budget, kind=k) for k in kinds},
                    "updated": rate(name, budget, updated=True),
                    "not_updated": rate(name, budget, updated=False),
                }
                for budget in BUDGETS
            }
            for name in BUILDERS
        },
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50_ms": round(statistics.median(s) * 1e3, 3),
        "p99_ms": round(s[min(len(s) - 1, int(len(s) * 0.99))] * 1e3, 3),
    }


def _fill(mem: Memory, dialogue: Dialogue, size: int, real_until: int) -> None:
    """Fill a store to `size` turns, reusing the dialogue's texts with fresh ids."""
    turns = dialogue.turns
    rng = np.random.default_rng(0)
    bar = _progress(size, f"fill {size:.0e}")
    batch = 1000
    for start in range(0, size, batch):
        chunk = [
            turns[i % len(turns)].model_copy(
                update={
                    "id": f"s{i:07d}",
                    "time": turns[0].time + i * 20.0,
                    "session": None,
                    "person": "alice",
                    "image_path": None,
                }
            )
            for i in range(start, min(size, start + batch))
        ]
        if start < real_until:
            mem.add_turns(chunk)
        else:
            vecs = rng.standard_normal((len(chunk), mem.embedder.dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            rowids = mem.store.add_turns(chunk, vecs, mem.embedder.model_id)
            mem.index.add(rowids, (owner_key(t.person, t.shared) for t in chunk), vecs)
        bar.update(len(chunk))
    bar.close()


def scale_bench(
    dialogue: Dialogue, sizes: list[int], workdir: Path, queries: int = 200, writes: int = 100
) -> dict[str, Any]:
    questions = [p.question for p in dialogue.probes[:queries]] or ["where are my keys"]
    out: dict[str, Any] = {}
    for size in sizes:
        mem = Memory.open(workdir / f"scale-{size}.db")
        t0 = time.perf_counter()
        _fill(mem, dialogue, size, real_until=1000)
        fill_s = time.perf_counter() - t0
        search_t, build_t = [], []
        for q in questions:
            t = time.perf_counter()
            mem.search(q, person="alice", k=10)
            search_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            mem.build_context(q, person="alice", budget_tokens=2000)
            build_t.append(time.perf_counter() - t)
        # Ingest: single durable add_turn calls (embedding + commit + fsync), the agent's path.
        base = dialogue.turns
        t = time.perf_counter()
        for i in range(writes):
            src = base[i % len(base)]
            mem.add_turn(
                src.model_copy(update={"id": f"w{i:06d}", "session": None, "image_path": None})
            )
        ingest_s = time.perf_counter() - t
        # Bulk: import-style batches (one transaction, batched embedding).
        bulk = [
            base[i % len(base)].model_copy(
                update={"id": f"b{i:06d}", "session": None, "image_path": None}
            )
            for i in range(writes * 5)
        ]
        t = time.perf_counter()
        mem.add_turns(bulk)
        bulk_s = time.perf_counter() - t
        out[str(size)] = {
            "search": _percentiles(search_t),
            "build_context_2k": _percentiles(build_t),
            "ingest_turns_per_s": round(writes / ingest_s, 1),
            "add_turn_ms": round(ingest_s / writes * 1e3, 2),
            "bulk_turns_per_s": round(len(bulk) / bulk_s, 1),
            "fill_s": round(fill_s, 1),
            "synthetic_vectors": max(0, size - 1000),
        }
        mem.close()
    return out


def plots(report: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    rec = report["recall"]["recall"]
    fig, axes = plt.subplots(1, len(BUDGETS), figsize=(4 * len(BUDGETS), 3.5), sharey=True)
    for ax, budget in zip(axes, BUDGETS, strict=True):
        for name, style in zip(BUILDERS, ("o-", "s--", "^:", "v-."), strict=True):
            d = rec[name][str(budget)]["by_distance"]
            ax.plot(list(d), list(d.values()), style, label=name)
        ax.axhline(0.9, color="grey", lw=0.8, ls=":")
        ax.set_title(f"budget {budget} tokens")
        ax.set_xlabel("distance (turns)")
        ax.tick_params(axis="x", rotation=45)
    axes[0].set_ylabel("evidence recall")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "recall_by_distance.png", dpi=110)
    files.append(str(out / "recall_by_distance.png"))
    plt.close(fig)

    scale = report["scale"]
    sizes = [int(s) for s in scale]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, style in (("search", "o-"), ("build_context_2k", "s--")):
        ax.plot(sizes, [scale[str(s)][key]["p50_ms"] for s in sizes], style, label=f"{key} p50")
        ax.plot(
            sizes,
            [scale[str(s)][key]["p99_ms"] for s in sizes],
            style,
            alpha=0.4,
            label=f"{key} p99",
        )
    ax.axhline(10, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("stored turns")
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "latency_by_size.png", dpi=110)
    files.append(str(out / "latency_by_size.png"))
    plt.close(fig)
    return files


def run(out: Path, sizes: list[int], quick: bool) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    dialogue = generate(n_turns=1000 if quick else 2000)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        report: dict[str, Any] = {"quick": quick}
        t = time.perf_counter()
        report["recall"] = recall_bench(dialogue, work)
        report["recall"]["seconds"] = round(time.perf_counter() - t, 1)
        report["scale"] = scale_bench(
            dialogue, sizes, work, queries=50 if quick else 200, writes=30 if quick else 100
        )
    report["targets"] = {
        "recall_2k_min_over_distance_hybrid": min(
            report["recall"]["recall"]["hybrid"]["2000"]["by_distance"].values()
        ),
        "search_p50_ms_at_largest": report["scale"][str(max(sizes))]["search"]["p50_ms"],
    }
    report["plots"] = plots(report, out)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def register_bench(bench_subparsers: Any) -> None:
    """Add `memory` to `omni-agent bench`."""
    p = bench_subparsers.add_parser("memory", help="memory recall at budget, latency, ingest")
    p.add_argument("--out", default="runs/bench-memory", help="report folder")
    p.add_argument("--sizes", default="1e3,1e4,1e5", help="store sizes, comma separated")
    p.add_argument("--quick", action="store_true", help="1000-turn dialogue, sizes up to 1e4")
    p.add_argument("--big", action="store_true", help="also measure 1e6 stored turns")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    sizes = _sizes(args.sizes)
    if args.quick:
        sizes = [s for s in sizes if s <= 10_000] or [1000]
    if args.big and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    report = run(Path(args.out), sizes, args.quick)
    print(json.dumps(report["targets"], indent=2))
    print(f"report: {Path(args.out) / 'report.json'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m memory.bench")
    register_bench(parser.add_subparsers(dest="bench", required=True))
    ns = parser.parse_args()
    raise SystemExit(ns.func(ns))

"""`omni-agent bench fleet`: the shared PostgreSQL + pgvector memory at fleet scale.

What a fleet operator needs to know before pointing robots at one database:
- semantic search latency (p50/p99) with the HNSW index, side by side with the exact scans
  it replaces: PostgreSQL's own exact scan and the in-process numpy scan of the SQLite
  backend, at 10^4 turns (10^5 with --big);
- HNSW's recall@10 against the exact top 10 for several ef_search values, and the
  smallest ef_search that reaches 0.98;
- concurrent writers: 4 simulated robots adding turns at once, against 1 robot alone and
  the SQLite backend's single writer: turns per second and p99 write latency.
Vectors are synthetic (384-d, clustered like sentence embeddings: 300 topics with noise),
so the bench needs no embedding model and measures the database alone. Without --db it
starts a throwaway PostgreSQL (pgserver) and stops it afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from memory.pg_store import PgStore, PgVectorIndex
from memory.sql_store import owner_key
from memory.store import Store
from memory.types import MemoryTurn
from memory.vectors import VectorIndex

DIM = 384
MODEL = "bench-synthetic-384"
PEOPLE = ("alice", "bob", "carol", "dan")
EF_VALUES = (20, 40, 64, 100, 200)
TARGET_RECALL = 0.98


def _vectors(n: int, rng: np.random.Generator, topics: np.ndarray) -> np.ndarray:
    which = rng.integers(0, len(topics), n)
    v = topics[which] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _turns(start: int, n: int, rng: np.random.Generator) -> list[MemoryTurn]:
    out = []
    for i in range(start, start + n):
        # Half the turns are shared household facts; the rest belong to one of four people.
        person = PEOPLE[int(rng.integers(0, len(PEOPLE)))]
        topic = int(rng.integers(0, 300))
        shared = bool(rng.random() < 0.5)
        text = f"bench turn {i} about topic {topic}"
        out.append(MemoryTurn(id=f"b{i}", speaker="user", person=person, shared=shared,
                              time=1.7e9 + i, text=text))  # fmt: skip
    return out


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _lat(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 3),
        "p99_ms": round(_pct(values, 0.99), 3),
    }


def _load(store: PgStore, n: int, rng: np.random.Generator, topics: np.ndarray) -> dict[str, Any]:
    started = time.perf_counter()
    vecs = _vectors(n, rng, topics)
    batch = 1000
    lite_keys: list[str | None] = []
    for start in range(0, n, batch):
        turns = _turns(start, min(batch, n - start), rng)
        store.add_turns(turns, vecs[start : start + len(turns)], MODEL)
        lite_keys += [owner_key(t.person, t.shared) for t in turns]
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    index = PgVectorIndex(store, DIM, MODEL)  # builds the HNSW graph over what is there
    build_s = time.perf_counter() - started
    numpy_index = VectorIndex(DIM)  # what the SQLite backend searches in process
    numpy_index.add(range(1, n + 1), lite_keys, vecs)
    return {
        "index": index,
        "numpy": numpy_index,
        "vecs": vecs,
        "load_s": round(load_s, 2),
        "hnsw_build_s": round(build_s, 2),
    }


def _search_bench(loaded: dict[str, Any], queries: int, rng: np.random.Generator
                  ) -> dict[str, Any]:  # fmt: skip
    index: PgVectorIndex = loaded["index"]
    numpy_index: VectorIndex = loaded["numpy"]
    vecs: np.ndarray = loaded["vecs"]
    picks = rng.integers(0, len(vecs), queries)
    qs = vecs[picks] + 0.3 * rng.standard_normal((queries, DIM)).astype(np.float32) / np.sqrt(DIM)
    qs = (qs / np.linalg.norm(qs, axis=1, keepdims=True)).astype(np.float32)
    askers = [PEOPLE[i % len(PEOPLE)] for i in range(queries)]
    exact: list[set[int]] = []
    pg_exact_ms: list[float] = []
    numpy_ms: list[float] = []
    for q, who in zip(qs, askers, strict=True):
        keys = [owner_key(who, False), None]
        t = time.perf_counter()
        top = index.search(q, keys, 10, exact=True)
        pg_exact_ms.append(1000 * (time.perf_counter() - t))
        exact.append({r for r, _ in top})
        t = time.perf_counter()
        numpy_index.search(q, keys, 10)
        numpy_ms.append(1000 * (time.perf_counter() - t))
    hnsw: dict[str, Any] = {}
    for ef in EF_VALUES:
        index.store.ef_search = ef
        ms: list[float] = []
        hits = 0
        for q, who, truth in zip(qs, askers, exact, strict=True):
            t = time.perf_counter()
            top = index._hnsw(
                f"v.model = %(model)s AND {_visible()}",
                {"q": q, "model": MODEL, "person": owner_key(who, False), "k": 10},
                10,
            )
            ms.append(1000 * (time.perf_counter() - t))
            hits += len({r for r, _ in top} & truth)
        hnsw[str(ef)] = _lat(ms) | {"recall_at_10": round(hits / (10 * queries), 4)}
    chosen = next((ef for ef in EF_VALUES if hnsw[str(ef)]["recall_at_10"] >= TARGET_RECALL), None)
    return {
        "queries": queries,
        "exact_pg": _lat(pg_exact_ms),
        "exact_numpy_sqlite_backend": _lat(numpy_ms),
        "hnsw": hnsw,
        "ef_search_for_recall_0.98": chosen,
    }


def _visible() -> str:
    from memory.pg_store import visible_clause

    return visible_clause("someone")


def _writers(url: str, robots: int, per_robot: int, rng: np.random.Generator,
             topics: np.ndarray) -> dict[str, Any]:  # fmt: skip
    stores = [PgStore(url, robot=f"bench-robot-{r}", max_size=1) for r in range(robots)]
    latencies: list[list[float]] = [[] for _ in range(robots)]
    work = [
        (_turns(10_000_000 * (r + 1) + 1_000_000 * robots, per_robot, rng),
         _vectors(per_robot, rng, topics))
        for r in range(robots)
    ]  # fmt: skip
    go = threading.Event()

    def write(r: int) -> None:
        go.wait()
        turns, vecs = work[r]
        for i, turn in enumerate(turns):
            t = time.perf_counter()
            stores[r].add_turns([turn], vecs[i : i + 1], MODEL)
            latencies[r].append(1000 * (time.perf_counter() - t))

    threads = [threading.Thread(target=write, args=(r,)) for r in range(robots)]
    for th in threads:
        th.start()
    started = time.perf_counter()
    go.set()
    for th in threads:
        th.join()
    wall = time.perf_counter() - started
    for s in stores:
        s.close()
    every = [x for lat in latencies for x in lat]
    return {"robots": robots, "turns": len(every),
            "turns_per_s": round(len(every) / wall, 1)} | _lat(every)  # fmt: skip


def _sqlite_writer(per_robot: int, rng: np.random.Generator, topics: np.ndarray
                   ) -> dict[str, Any]:  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "robot.db")
        turns, vecs = _turns(0, per_robot, rng), _vectors(per_robot, rng, topics)
        ms = []
        started = time.perf_counter()
        for i, turn in enumerate(turns):
            t = time.perf_counter()
            store.add_turns([turn], vecs[i : i + 1], MODEL)
            ms.append(1000 * (time.perf_counter() - t))
        wall = time.perf_counter() - started
        store.close()
    return {"robots": 1, "turns": per_robot, "turns_per_s": round(per_robot / wall, 1)} | _lat(ms)


def run_fleet_bench(url: str | None, size: int, queries: int, per_robot: int
                    ) -> dict[str, Any]:  # fmt: skip
    rng = np.random.default_rng(7)
    topics = rng.standard_normal((300, DIM)).astype(np.float32) / np.sqrt(DIM)
    with ExitStack() as stack:
        if url is None:
            from bench.postgres import running_postgres

            pg = stack.enter_context(running_postgres())
            url = pg.new_database("bench")
            where = "throwaway pgserver, Unix socket"
        else:
            where = "given --db"
        store = PgStore(url, robot="bench-loader")
        stack.callback(store.close)
        with store.connection() as conn:
            version = conn.execute(
                "SELECT current_setting('server_version'), "
                "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
            ).fetchone()
            where += f" (PostgreSQL {version[0]}, pgvector {version[1]})"
            if conn.execute("SELECT count(*) FROM turns").fetchone()[0]:
                from omni_agent.errors import UserError

                raise UserError("bench fleet needs an empty database (it writes 10^4+ turns)")
        loaded = _load(store, size, rng, topics)
        search = _search_bench(loaded, queries, rng)
        writers = {
            "sqlite_1_robot": _sqlite_writer(per_robot, rng, topics),
            "pg_1_robot": _writers(url, 1, per_robot, rng, topics),
            "pg_4_robots": _writers(url, 4, per_robot, rng, topics),
        }
    return {
        "database": where,
        "turns": size,
        "vectors": f"synthetic {DIM}-d, 300 clustered topics",
        "load_s": loaded["load_s"],
        "hnsw_build_s": loaded["hnsw_build_s"],
        "search": search,
        "writers": writers,
    }


def _print(report: dict[str, Any]) -> None:
    s = report["search"]
    print(f"fleet memory: {report['turns']} turns ({report['vectors']}), {report['database']}")
    print(f"  load {report['load_s']} s, HNSW build {report['hnsw_build_s']} s")
    print(f"  semantic top-10 as one person ({s['queries']} queries)   p50 ms   p99 ms  recall@10")
    for name, row in (("exact, numpy (SQLite backend)", s["exact_numpy_sqlite_backend"]),
                      ("exact, PostgreSQL scan", s["exact_pg"])):  # fmt: skip
        print(f"    {name:38} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f}      1.000")
    for ef, row in s["hnsw"].items():
        name = f"HNSW ef_search={ef}"
        recall = row["recall_at_10"]
        print(f"    {name:38} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f}  {recall:9.3f}")
    chosen = s["ef_search_for_recall_0.98"]
    if chosen is not None:
        ratio = s["exact_pg"]["p50_ms"] / s["hnsw"][str(chosen)]["p50_ms"]
        print(f"  ef_search={chosen} reaches recall@10 >= 0.98: {ratio:.1f}x faster than the"
              " PostgreSQL exact scan (p50)")  # fmt: skip
    else:
        print("  no ef_search tried reaches recall@10 >= 0.98")
    print("  writers (one turn per transaction)       turns/s   p50 ms   p99 ms")
    for name, w in report["writers"].items():
        print(f"    {name:38} {w['turns_per_s']:7.1f} {w['p50_ms']:8.2f} {w['p99_ms']:8.2f}")


def cmd_bench_fleet(args: argparse.Namespace) -> int:
    from bench.postgres import PgUnavailable
    from omni_agent.errors import UserError

    size = args.turns or (100_000 if args.big else 10_000)
    try:
        report = run_fleet_bench(args.db, size, args.queries, args.writes)
    except (UserError, PgUnavailable, ConnectionError) as e:
        print(f"omni-agent: error: {e}")
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
        print(f"  written to {args.out}")
    return 0


def register_bench(benches: Any) -> None:
    bench = benches.add_parser(
        "fleet", help="shared PostgreSQL memory: HNSW vs exact search, concurrent robots"
    )
    bench.add_argument("--db", help="an empty postgresql://... database (default: a throwaway)")
    bench.add_argument("--big", action="store_true", help="10^5 turns instead of 10^4")
    bench.add_argument("--turns", type=int, help="store size (overrides --big)")
    bench.add_argument("--queries", type=int, default=200)
    bench.add_argument("--writes", type=int, default=200, help="turns each robot writes")
    bench.add_argument("--out", type=Path, default=Path("runs/bench-fleet.json"))
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.set_defaults(func=cmd_bench_fleet)

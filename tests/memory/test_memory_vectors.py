"""The vector index: exact below its threshold; above it, cells scanned in a projection and
rescored, whose results still match the exact search on real sentence embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from bench.dialogues import generate
from memory import vectors
from memory.embeddings import Embedder
from memory.vectors import VectorIndex


def test_the_cells_find_what_the_exact_scan_finds(
    embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Few rescored candidates (100 of 2,400), so the cells, not the rescoring, must find them.
    monkeypatch.setattr(vectors, "RESCORE_MIN", 100)
    d = generate(n_turns=2400, seed=3)
    vecs = embedder.embed([t.text for t in d.turns])
    exact, approx = VectorIndex(embedder.dim), VectorIndex(embedder.dim, approx_above=1000)
    # The approximate index grows turn by turn: trained at 1,000, appended, regrouped.
    exact.add(range(1, len(vecs) + 1), ["alice"] * len(vecs), vecs)
    for start in range(0, len(vecs), 100):
        rows = range(start + 1, min(len(vecs), start + 100) + 1)
        approx.add(rows, ["alice"] * len(rows), vecs[start : start + 100])
    assert approx._parts["alice"].cells is not None  # the cells are in use
    questions = embedder.embed([p.question for p in d.probes[:30]])
    overlap = []
    for q in questions:
        for k in (5, 10, 20):
            kth = exact.search(q, ["alice"], k)[-1][1]
            got = approx.search(q, ["alice"], k)
            # By score: the generator repeats lines, and equal vectors may swap rowids.
            overlap.append(sum(s >= kth - 1e-6 for _, s in got) / k)
            scores = dict(exact.search(q, ["alice"], len(vecs)))
            assert all(abs(scores[r] - s) < 1e-5 for r, s in got)  # rescored exactly
    assert float(np.mean(overlap)) >= 0.8, float(np.mean(overlap))  # 0.86 when written


def test_removal_and_late_adds_keep_the_projection_in_step(embedder: Embedder) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((3000, embedder.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = VectorIndex(embedder.dim, approx_above=1000)
    index.add(range(1, 2001), ["bob"] * 2000, vecs[:2000])
    index.remove(range(1, 1001))
    index.add(range(2001, 3001), ["bob"] * 1000, vecs[2000:])
    assert index.search(vecs[2500], ["bob"], 1) == [
        (2501, index.search(vecs[2500], ["bob"], 1)[0][1])
    ]
    assert index.search(vecs[10], ["bob"], 5)[0][0] != 11  # removed rows are gone

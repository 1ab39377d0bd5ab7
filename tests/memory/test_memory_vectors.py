"""The vector index: exact below its threshold; above it, a PCA first pass whose results
still match the exact search on real sentence embeddings."""

from __future__ import annotations

import numpy as np

from bench.dialogues import generate
from memory.embeddings import Embedder
from memory.vectors import VectorIndex


def test_the_projected_first_pass_finds_what_the_exact_scan_finds(embedder: Embedder) -> None:
    d = generate(n_turns=700, seed=3)
    vecs = embedder.embed([t.text for t in d.turns])
    exact, approx = VectorIndex(embedder.dim), VectorIndex(embedder.dim, approx_above=300)
    for index in (exact, approx):
        index.add(range(1, len(vecs) + 1), ["alice"] * len(vecs), vecs)
    assert approx._parts["alice"].proj is not None  # the projection is in use
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
    assert float(np.mean(overlap)) >= 0.97


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

"""Exact cosine search in numpy, partitioned by who may see each vector.

Why brute force: measured on 2 cores at 10^5 vectors (docs/memory.md), numpy f32 scans
in ~8.5 ms with exact results; faiss flat/SQ8 were no faster, and HNSW indexes (faiss,
hnswlib, usearch) answered in 0.2 ms but took 10-19 s to build, recalled 0.3-0.8 of the
exact top 10 at ef=64, and would be a second file to keep consistent with SQLite.
Why partitions: a person's query scans only their own vectors plus shared ones, so
isolation holds by construction and the scan shrinks with the number of people.
Past `APPROX_ABOVE` vectors in one partition the scan is memory-bound (150 MB at 10^5),
so a first pass scans a PCA projection to `LOW_DIM` dimensions (a sixth of the bytes) and
the best `RESCORE_FACTOR * k` are rescored exactly: still no second on-disk structure (the
projection is rebuilt at open), and exact below the threshold.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

APPROX_ABOVE = 50_000


def matvec(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """`m @ v` in one thread. Not BLAS gemv: OpenBLAS spreads a gemv over its threads, and
    on a busy 2-core robot each waits for a core (measured under load: 4,000 x 384 took
    15 ms as gemv, 0.24 ms here; 10^5 x 64, 12 ms against 1 ms)."""
    return np.einsum("ij,j->i", m, v)


LOW_DIM = 64
RESCORE_FACTOR = 8


class _Partition:
    def __init__(self, dim: int, approx_above: int) -> None:
        self.vecs = np.zeros((64, dim), np.float32)
        self.rowids = np.zeros(64, np.int64)
        self.n = 0
        self.approx_above = approx_above
        self.proj: np.ndarray | None = None  # (dim, LOW_DIM) PCA basis, once trained
        self.low = np.zeros((64, LOW_DIM), np.float32)

    def add(self, rowids: np.ndarray, vecs: np.ndarray) -> None:
        need = self.n + len(rowids)
        if need > len(self.rowids):
            cap = max(need, 2 * len(self.rowids))  # doubling: amortised O(1) appends
            grown = np.zeros((cap, self.vecs.shape[1]), np.float32)
            grown[: self.n] = self.vecs[: self.n]
            self.vecs = grown
            self.rowids = np.resize(self.rowids, cap)
            if self.proj is not None:
                low = np.zeros((cap, LOW_DIM), np.float32)
                low[: self.n] = self.low[: self.n]
                self.low = low
        in_order = self.n == 0 or len(rowids) == 0 or rowids.min() > self.rowids[self.n - 1]
        self.vecs[self.n : need] = vecs
        self.rowids[self.n : need] = rowids
        if self.proj is not None:
            self.low[self.n : need] = vecs @ self.proj
        self.n = need
        if not in_order or np.any(np.diff(rowids) <= 0):
            # Rowids stay sorted so `score_rows` can binary-search them (backfills are rare).
            order = np.argsort(self.rowids[:need], kind="stable")
            self.vecs[:need] = self.vecs[:need][order]
            self.rowids[:need] = self.rowids[:need][order]
            if self.proj is not None:
                self.low[:need] = self.low[:need][order]
        if self.proj is None and self.n > self.approx_above:
            self._train()

    def _train(self, sample: int = 20_000) -> None:
        """PCA basis from an even sample of the vectors, then every vector projected."""
        step = max(1, self.n // sample)
        x = self.vecs[: self.n : step]
        _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
        self.proj = np.ascontiguousarray(vt[:LOW_DIM].T.astype(np.float32))
        self.low = np.zeros((len(self.rowids), LOW_DIM), np.float32)
        for start in range(0, self.n, 65536):
            end = min(self.n, start + 65536)
            self.low[start:end] = self.vecs[start:end] @ self.proj

    def scores(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, cosines) of at least the best `k` vectors, not sorted."""
        n = self.n
        if self.proj is None or n <= RESCORE_FACTOR * k:
            scores = matvec(self.vecs[:n], query)
            if n > k:
                top = np.argpartition(-scores, k)[:k]
                return top, scores[top]
            return np.arange(n), scores
        rough = matvec(self.low[:n], matvec(self.proj.T, query))
        want = RESCORE_FACTOR * k
        # A threshold from a sample instead of argpartition over every score.
        sample = rough[:: max(1, n // 20_000)]
        q = max(0.0, 1.0 - 2.0 * want / n)
        cand = np.flatnonzero(rough >= np.quantile(sample, q))
        if len(cand) < want:
            cand = np.argpartition(-rough, want)[:want]
        exact = matvec(self.vecs[cand], query)
        if len(cand) > k:
            top = np.argpartition(-exact, k)[:k]
            return cand[top], exact[top]
        return cand, exact

    def locate(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position, found) of each wanted rowid, by binary search over the sorted rowids."""
        rows = self.rowids[: self.n]
        pos = np.clip(np.searchsorted(rows, wanted), 0, self.n - 1)
        return pos, rows[pos] == wanted

    def remove(self, rowids: np.ndarray) -> None:
        keep = ~np.isin(self.rowids[: self.n], rowids)
        kept = int(keep.sum())
        self.vecs[:kept] = self.vecs[: self.n][keep]
        self.rowids[:kept] = self.rowids[: self.n][keep]
        if self.proj is not None:
            self.low[:kept] = self.low[: self.n][keep]
        self.n = kept


class VectorIndex:
    def __init__(self, dim: int, approx_above: int = APPROX_ABOVE) -> None:
        self.dim = dim
        self.approx_above = approx_above
        self._parts: dict[str, _Partition] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(p.n for p in self._parts.values())

    def keys(self) -> list[str]:
        """The owners with vectors here (people, and the shared key)."""
        with self._lock:
            return [k for k, p in self._parts.items() if p.n]

    def add(self, rowids: Iterable[int], keys: Iterable[str], vecs: np.ndarray) -> None:
        rows = np.fromiter(rowids, np.int64)
        key_list = list(keys)
        with self._lock:
            for key in dict.fromkeys(key_list):
                sel = np.array([k == key for k in key_list])
                part = self._parts.setdefault(key, _Partition(self.dim, self.approx_above))
                part.add(rows[sel], vecs[sel])

    def rowids(self) -> np.ndarray:
        """Every rowid held, in all partitions (to compare with the store's)."""
        with self._lock:
            held = [p.rowids[: p.n] for p in self._parts.values()]
        return np.concatenate(held) if held else np.zeros(0, np.int64)

    def remove(self, rowids: Iterable[int]) -> None:
        rows = np.fromiter(rowids, np.int64)
        with self._lock:
            for part in self._parts.values():
                part.remove(rows)

    def visible(self, keys: Iterable[str], rowids: np.ndarray) -> np.ndarray:
        """Mask of `rowids` held in the partitions `keys` (i.e. those the asker may see).

        A row missing from the index counts as not visible: the check fails closed.
        """
        wanted = np.asarray(rowids, np.int64)
        mask = np.zeros(len(wanted), bool)
        with self._lock:
            for key in keys:
                part = self._parts.get(key)
                if part is None or part.n == 0 or len(wanted) == 0:
                    continue
                mask |= part.locate(wanted)[1]
        return mask

    def score_rows(self, query: np.ndarray, keys: Iterable[str], rowids: Iterable[int],
                   ) -> dict[int, float]:  # fmt: skip
        """Cosine of `query` with specific rows (those the lexical channel found)."""
        wanted = np.fromiter(rowids, np.int64)
        out: dict[int, float] = {}
        with self._lock:
            for key in keys:
                part = self._parts.get(key)
                if part is None or part.n == 0 or len(wanted) == 0:
                    continue
                pos, found = part.locate(wanted)
                scores = matvec(part.vecs[pos[found]], query)
                out.update(zip(wanted[found].tolist(), scores.tolist(), strict=True))
        return out

    def vectors(self, keys: Iterable[str], rowids: Iterable[int]) -> np.ndarray:
        """The stored vectors of `rowids` found in the partitions `keys`."""
        wanted = np.fromiter(rowids, np.int64)
        out: list[np.ndarray] = []
        with self._lock:
            for key in keys:
                part = self._parts.get(key)
                if part is None or part.n == 0 or len(wanted) == 0:
                    continue
                pos, found = part.locate(wanted)
                out.append(part.vecs[pos[found]])
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def search(
        self,
        query: np.ndarray,
        keys: Iterable[str],
        k: int,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """Top-k (rowid, cosine) among the partitions `keys`, optionally within `allowed`."""
        best_rows: list[np.ndarray] = []
        best_scores: list[np.ndarray] = []
        with self._lock:
            for key in keys:
                part = self._parts.get(key)
                if part is None or part.n == 0:
                    continue
                if allowed is None:
                    pos, scores = part.scores(query, k)
                    rows = part.rowids[pos]
                else:  # filtered: exact over the allowed rows
                    vecs, rows = part.vecs[: part.n], part.rowids[: part.n]
                    sel = np.isin(rows, allowed)
                    vecs, rows = vecs[sel], rows[sel]
                    scores = matvec(vecs, query)
                    if len(scores) > k:
                        top = np.argpartition(-scores, k)[:k]
                        rows, scores = rows[top], scores[top]
                best_rows.append(np.array(rows))
                best_scores.append(np.array(scores))
        if not best_rows:
            return []
        rows_all = np.concatenate(best_rows)
        scores_all = np.concatenate(best_scores)
        # Stable tie-break on rowid keeps results deterministic.
        order = np.lexsort((rows_all, -scores_all))[:k]
        return [(int(rows_all[i]), float(scores_all[i])) for i in order]

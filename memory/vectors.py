"""Cosine search in numpy, partitioned by who may see each vector.

Why numpy: measured on 2 cores (docs/memory.md), an exact f32 scan answers 10^4 vectors in
under a millisecond; faiss flat/SQ8 were no faster, and HNSW libraries (faiss, hnswlib,
usearch) took 10-19 s to build 10^5 vectors and recalled 0.3-0.8 of the exact top 10 at
ef=64. Nothing here is a second file to keep consistent with SQLite: the vectors live in
the database, and everything below is rebuilt from them at open.
Why partitions: a person's query scans only their own vectors plus shared ones, so
isolation holds by construction and the scan shrinks with the number of people.
Past `APPROX_ABOVE` vectors in one partition an exact scan is memory-bound (1.5 GB at 10^6
turns). There the partition keeps a PCA projection of its vectors to `LOW_DIM` dimensions
(a sixth of the bytes), grouped into k-means cells (`_Cells`): a query scans, in the
projection, only the cells nearest to it (`PROBE_SHARE` of the vectors) and rescores the
best of those exactly. Exact below the threshold.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator

import numpy as np

Partition = str | None
"""A partition of the index: a person's key (`names.person_key`), or None for the
turns everyone may see (shared, or with no person). None is never a name, so no name can
reach the shared partition: being shared is a turn's flag, never its owner's name."""

APPROX_ABOVE = 50_000
LOW_DIM = 128
ROUTE_DIM = 32  # leading PCA dimensions that pick a vector's cell (cheap to assign 10^6)
PROBE_SHARE = 1 / 4  # of a partition's vectors scanned in the projection per query
RESCORE_FACTOR = 16  # best projected candidates rescored exactly, per result wanted
RESCORE_MIN = 1000
TAIL_SHARE = 1 / 8  # new vectors kept outside the cells (scanned whole) before regrouping


def matvec(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """`m @ v` in one thread. Not BLAS gemv: OpenBLAS spreads a gemv over its threads, and
    on a busy 2-core robot each waits for a core (measured under load: 4,000 x 384 took
    15 ms as gemv, 0.24 ms here; 10^5 x 64, 12 ms against 1 ms)."""
    return np.einsum("ij,j->i", m, v)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the best `k` scores, unordered (all of them if there are fewer)."""
    if len(scores) <= k:
        return np.arange(len(scores))
    return np.argpartition(-scores, k)[:k]


def _room(array: np.ndarray, used: int, need: int) -> np.ndarray:
    """`array` with room for `need` rows, its first `used` kept: doubling, so appending
    one row at a time costs amortised O(1)."""
    if need <= len(array):
        return array
    grown = np.zeros((max(need, 2 * len(array)), *array.shape[1:]), array.dtype)
    grown[:used] = array[:used]
    return grown


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (L2) of each row of `x`, in chunks to bound memory."""
    sq = (centroids**2).sum(axis=1)
    out = np.empty(len(x), np.int32)
    for start in range(0, len(x), 32768):
        chunk = x[start : start + 32768]
        out[start : start + len(chunk)] = np.argmin(sq - 2.0 * chunk @ centroids.T, axis=1)
    return out


def kmeans(x: np.ndarray, count: int, iterations: int = 8, seed: int = 0) -> np.ndarray:
    """Lloyd's k-means from a random start; an empty cell restarts at a random point."""
    rng = np.random.default_rng(seed)
    centroids = x[rng.choice(len(x), count, replace=False)].copy()
    for _ in range(iterations):
        cell = _nearest(x, centroids)
        counts = np.bincount(cell, minlength=count)
        sums = np.zeros_like(centroids)
        np.add.at(sums, cell, x)
        empty = counts == 0
        centroids[~empty] = sums[~empty] / counts[~empty, None]
        centroids[empty] = x[rng.choice(len(x), int(empty.sum()), replace=False)]
    return centroids


class _Cells:
    """A partition's vectors projected to `LOW_DIM` and grouped by k-means cell.

    `low[offsets[c]:offsets[c + 1]]` are the projections of cell c, `pos` their positions
    in the partition. Vectors appended later wait in a tail, scanned whole, until it
    holds `TAIL_SHARE` of the grouped ones; then everything is grouped again. The basis and
    centroids are retrained when the partition has doubled since (see `_Partition.add`).
    """

    def __init__(self, vecs: np.ndarray, sample: int = 20_000) -> None:
        self.trained_n = len(vecs)
        x = vecs[:: max(1, len(vecs) // sample)]
        # PCA from the covariance's eigenvectors (a 384 x 384 problem, not an SVD of x).
        centred = x - x.mean(axis=0)
        _, eigvecs = np.linalg.eigh(centred.T @ centred)
        self.proj = np.ascontiguousarray(eigvecs[:, ::-1][:, :LOW_DIM].astype(np.float32))
        self.count = min(len(x), max(16, int(np.sqrt(len(vecs)))))
        self.centroids = kmeans(x @ self.proj[:, :ROUTE_DIM], self.count)
        self._group(self.project(vecs), np.arange(len(vecs)))

    def project(self, vecs: np.ndarray) -> np.ndarray:
        out = np.empty((len(vecs), self.proj.shape[1]), np.float32)
        for start in range(0, len(vecs), 65536):
            out[start : start + 65536] = vecs[start : start + 65536] @ self.proj
        return out

    def _group(self, low: np.ndarray, pos: np.ndarray) -> None:
        cell = _nearest(low[:, :ROUTE_DIM], self.centroids)
        order = np.argsort(cell, kind="stable")
        self.low, self.pos = low[order], pos[order]
        self.offsets = np.searchsorted(cell[order], np.arange(self.count + 1))
        self.tail_low = np.zeros((64, low.shape[1]), np.float32)
        self.tail_pos = np.zeros(64, np.int64)
        self.tail_n = 0

    def append(self, vecs: np.ndarray, positions: np.ndarray) -> None:
        used, need = self.tail_n, self.tail_n + len(positions)
        self.tail_low = _room(self.tail_low, used, need)
        self.tail_pos = _room(self.tail_pos, used, need)
        self.tail_low[used:need] = self.project(vecs)
        self.tail_pos[used:need] = positions
        self.tail_n = need
        if need > TAIL_SHARE * len(self.pos):
            self._group(
                np.concatenate([self.low, self.tail_low[:need]]),
                np.concatenate([self.pos, self.tail_pos[:need]]),
            )

    def candidates(self, query: np.ndarray, want: int) -> np.ndarray:
        """Positions of the `want` best projected scores in the cells nearest to `query`."""
        q = matvec(self.proj.T, query)
        order = np.argsort(-matvec(self.centroids, q[:ROUTE_DIM]))
        filled = np.cumsum(np.diff(self.offsets)[order])
        target = max(PROBE_SHARE * len(self.pos), want)
        probed = np.sort(order[: int(np.searchsorted(filled, target)) + 1])
        spans = [slice(self.offsets[c], self.offsets[c + 1]) for c in probed]
        tail = slice(0, self.tail_n)
        pos = np.concatenate([self.pos[s] for s in spans] + [self.tail_pos[tail]])
        low = [matvec(self.low[s], q) for s in spans]
        rough = np.concatenate([*low, matvec(self.tail_low[tail], q)])
        if len(rough) > 4 * want:  # a threshold from a sample: cheaper than argpartition
            sample = rough[:: max(1, len(rough) // 20_000)]
            over = np.flatnonzero(rough >= np.quantile(sample, 1.0 - 2.0 * want / len(rough)))
            if len(over) >= want:
                return pos[over[_top(rough[over], want)]]
        return pos[_top(rough, want)]


class _Partition:
    def __init__(self, dim: int, approx_above: int) -> None:
        self.vecs = np.zeros((64, dim), np.float32)
        self.rowids = np.zeros(64, np.int64)
        self.n = 0
        self.approx_above = approx_above
        self.cells: _Cells | None = None

    def add(self, rowids: np.ndarray, vecs: np.ndarray, train: bool = True) -> None:
        start, need = self.n, self.n + len(rowids)
        self.vecs = _room(self.vecs, start, need)
        self.rowids = _room(self.rowids, start, need)
        in_order = start == 0 or len(rowids) == 0 or rowids.min() > self.rowids[start - 1]
        self.vecs[start:need] = vecs
        self.rowids[start:need] = rowids
        self.n = need
        if not in_order or np.any(np.diff(rowids) <= 0):
            # Rowids stay sorted so `locate` can binary-search them (backfills are rare);
            # positions move, so the cells are rebuilt.
            order = np.argsort(self.rowids[:need], kind="stable")
            self.vecs[:need] = self.vecs[:need][order]
            self.rowids[:need] = self.rowids[:need][order]
            self.cells = None
        elif self.cells is not None and need < 2 * self.cells.trained_n:
            self.cells.append(vecs, np.arange(start, need))
        if train:
            self.train_if_due()

    def train_if_due(self) -> None:
        """Cells past the threshold, retrained when missing or outgrown (doubled)."""
        if self.n <= self.approx_above:
            self.cells = None
        elif self.cells is None or self.n >= 2 * self.cells.trained_n:
            self.cells = _Cells(self.vecs[: self.n])

    def scores(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, cosines) of the best `k` vectors (approximately, above the
        threshold: the best of the projected candidates, rescored exactly), unordered."""
        want = max(RESCORE_FACTOR * k, RESCORE_MIN)
        if self.cells is None or self.n <= want:
            scores = matvec(self.vecs[: self.n], query)
            top = _top(scores, k)
            return top, scores[top]
        cand = np.sort(self.cells.candidates(query, want))  # in order: a faster gather
        exact = matvec(self.vecs[cand], query)
        top = _top(exact, k)
        return cand[top], exact[top]

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
        self.n = kept
        self.cells = None  # positions moved (forgetting a person is rare): rebuilt
        self.train_if_due()


class VectorIndex:
    def __init__(self, dim: int, approx_above: int = APPROX_ABOVE) -> None:
        self.dim = dim
        self.approx_above = approx_above
        self._parts: dict[Partition, _Partition] = {}
        self._lock = threading.Lock()
        self._bulk = False

    @contextlib.contextmanager
    def loading(self) -> Iterator[None]:
        """Many `add` calls in a row (opening a store): cells are built once, at the end,
        instead of at every doubling of a partition."""
        self._bulk = True
        try:
            yield
        finally:
            self._bulk = False
            with self._lock:
                for part in self._parts.values():
                    part.train_if_due()

    def __len__(self) -> int:
        return sum(p.n for p in self._parts.values())

    def keys(self) -> list[Partition]:
        """The partitions with vectors here (people's keys, and None: shared)."""
        with self._lock:
            return [k for k, p in self._parts.items() if p.n]

    def add(self, rowids: Iterable[int], keys: Iterable[Partition], vecs: np.ndarray) -> None:
        rows = np.fromiter(rowids, np.int64)
        key_list = list(keys)
        with self._lock:
            for key in dict.fromkeys(key_list):
                sel = np.array([k == key for k in key_list])
                part = self._parts.setdefault(key, _Partition(self.dim, self.approx_above))
                part.add(rows[sel], vecs[sel], train=not self._bulk)

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

    def visible(self, keys: Iterable[Partition], rowids: np.ndarray) -> np.ndarray:
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

    def score_rows(self, query: np.ndarray, keys: Iterable[Partition], rowids: Iterable[int],
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

    def vectors(self, keys: Iterable[Partition], rowids: Iterable[int]) -> np.ndarray:
        """The stored vectors of `rowids`, one row each in their order; a rowid not in the
        partitions `keys` gets a row of zeros."""
        wanted = np.fromiter(rowids, np.int64)
        out = np.zeros((len(wanted), self.dim), np.float32)
        with self._lock:
            for key in keys:
                part = self._parts.get(key)
                if part is None or part.n == 0 or len(wanted) == 0:
                    continue
                pos, found = part.locate(wanted)
                out[found] = part.vecs[pos[found]]
        return out

    def search(
        self,
        query: np.ndarray,
        keys: Iterable[Partition],
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

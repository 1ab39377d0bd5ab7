"""Hybrid retrieval: semantic cosine + idf-weighted FTS5 matches + recency + person + place.

Scores are a weighted sum of parts that each lie in [0, 1], so a result's `parts` dict
explains its score exactly: score == sum(weights[p] * parts[p]).
"""

from __future__ import annotations

import re
import time as _time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from pydantic import BaseModel

from memory.embeddings import Embedder
from memory.store import SHARED_KEY, Store, StoredTurn, query_terms
from memory.types import SearchResult
from memory.vectors import VectorIndex

PARTS = ("semantic", "lexical", "recency", "person", "place")


class ScoreWeights(BaseModel):
    semantic: float = 0.6
    lexical: float = 0.3
    recency: float = 0.05
    person: float = 0.05
    place: float = 0.15
    recency_half_life_s: float = 7 * 24 * 3600.0
    candidates: int = 100  # per channel (semantic, lexical) before fusion
    lexical_postings: int = 1500  # rowids the lexical channel reads per query, at most
    max_df: float = 0.2  # query terms in more than this share of turns are ignored


@dataclass(frozen=True)
class Filters:
    place: str | None = None
    since: float | None = None
    until: float | None = None

    @property
    def active(self) -> bool:
        return self.place is not None or self.since is not None or self.until is not None


def _ago(seconds: float) -> str:
    if seconds < 90:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"  # pragma: no cover


class Retriever:
    def __init__(self, store: Store, index: VectorIndex, embedder: Embedder,
                 weights: ScoreWeights | None = None) -> None:  # fmt: skip
        self.store = store
        self.index = index
        self.embedder = embedder
        self.weights = weights or ScoreWeights()

    def search(
        self,
        query: str,
        *,
        person: str | None,
        k: int = 10,
        now: float | None = None,
        filters: Filters | None = None,
        exclude: set[str] | None = None,
    ) -> list[SearchResult]:
        w = self.weights
        now = _time.time() if now is None else now
        filters = filters or Filters()
        allowed: np.ndarray | None = None
        if filters.active:
            allowed = np.array(
                self.store.rowids_where(filters.place, filters.since, filters.until), np.int64
            )
        keys = [SHARED_KEY] if person is None else [person, SHARED_KEY]
        qvec = self.embedder.embed_one(query)
        semantic = dict(self.index.search(qvec, keys, w.candidates, allowed))
        lexical = self._lexical(query, keys, allowed)
        exclude = exclude or set()
        rows = self.store.score_rows(dict.fromkeys([*semantic, *lexical]))
        rows = {r: v for r, v in rows.items() if v[0] not in exclude}
        if not rows:
            return []
        lexical_only = [r for r in rows if r not in semantic]
        semantic.update(self.index.score_rows(qvec, keys, lexical_only))
        mentioned = self._mentioned_places(query)
        weights = [getattr(w, name) for name in PARTS]
        half_life = w.recency_half_life_s
        scored: list[tuple[float, float, str, int, tuple[float, ...]]] = []
        for rowid, (turn_id, owner, when, place) in rows.items():
            values = (
                round(max(0.0, semantic.get(rowid, 0.0)), 6),
                round(lexical.get(rowid, 0.0), 6),
                round(0.5 ** (max(0.0, now - when) / half_life), 6),
                1.0 if person is not None and owner == person else 0.0,
                1.0 if place and place.lower() in mentioned else 0.0,
            )
            score = round(sum(a * b for a, b in zip(weights, values, strict=True)), 6)
            scored.append((-score, when, turn_id, rowid, values))
        scored.sort()  # best first; ties: older first, then id (deterministic)
        top = [
            (neg, when, turn_id, rowid, dict(zip(PARTS, values, strict=True)))
            for neg, when, turn_id, rowid, values in scored[:k]
        ]
        # Full rows (text, captions) only for what is returned.
        turns = self.store.turns_by_rowid(r for *_, r, _ in top)
        terms = set(query_terms(query))
        return [
            SearchResult(
                turn_id=turn_id,
                score=-neg,
                parts=parts,
                reason=self._reason(turns[rowid], parts, terms, now),
                turn=turns[rowid].turn,
            )
            for neg, _, turn_id, rowid, parts in top
        ]

    def _lexical(self, query: str, keys: list[str], allowed: np.ndarray | None) -> dict[int, float]:
        """Top lexical candidates the asker may see: rowid -> share of the query matched.

        The store returns candidates for everyone; visibility is checked here, before any
        scoring, against the vector index partitions (own + shared), so another person's
        private turn never reaches the ranking.
        """
        w = self.weights
        hits = self.store.lexical(query, w.lexical_postings, w.max_df)
        if len(hits.rowids) == 0 or hits.total <= 0:
            return {}
        keep = self.index.visible(keys, hits.rowids)
        if allowed is not None:
            keep &= np.isin(hits.rowids, allowed)
        rowids, scores = hits.rowids[keep], hits.scores[keep]
        # Best first; ties go to the newer turn.
        order = np.lexsort((-rowids, -scores))[: w.candidates]
        share = np.minimum(1.0, scores[order] / hits.total)
        return dict(zip(rowids[order].tolist(), share.tolist(), strict=True))

    def _mentioned_places(self, query: str) -> set[str]:
        q = " " + " ".join(re.findall(r"\w+", query.lower())) + " "
        return {p.lower() for p in self.store.places() if f" {p.lower()} " in q}

    @staticmethod
    def _reason(st: StoredTurn, parts: dict[str, float], terms: set[str], now: float) -> str:
        bits = [f"semantic {parts['semantic']:.2f}"]
        text = (st.turn.text + " " + (st.turn.image_caption or "")).lower()
        # FTS5 stems ("keys" matches "key"): show the query words that share a stem prefix.
        prefixes = {w[:n] for w in re.findall(r"\w+", text) for n in (2, 3, 4)}
        hits = sorted(t for t in terms if t[:4] in prefixes)
        if parts["lexical"] > 0 and hits:
            bits.append("words " + ", ".join(hits[:4]))
        if parts["place"]:
            bits.append(f"at {st.turn.place}")
        if parts["person"]:
            bits.append(f"{st.turn.person}'s own turn")
        elif st.turn.shared:
            bits.append("shared")
        if st.turn.image_caption:
            bits.append("has image")
        when = datetime.fromtimestamp(st.turn.time, tz=timezone.utc).strftime("%Y-%m-%d")
        bits.append(f"{_ago(max(0.0, now - st.turn.time))} ({when})")
        return "; ".join(bits)

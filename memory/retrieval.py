"""Hybrid retrieval: semantic cosine + idf-weighted FTS5 matches + recency + person + place.

Scores are a weighted sum of parts that each lie in [0, 1], so a result's `parts` dict
explains its score exactly: score == sum(weights[p] * parts[p]).
"""

from __future__ import annotations

import itertools
import re
import time as _time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from pydantic import BaseModel

from memory.embeddings import Embedder
from memory.names import person_key
from memory.protocol import MemoryStore, VectorSearch
from memory.sql_store import STOPWORDS, StoredTurn, key_of, query_terms
from memory.types import SearchResult
from memory.vectors import Partition

PARTS = ("semantic", "lexical", "recency", "person", "place", "link", "speaker", "named")
_WORDS = re.compile(r"\w+")
_AFTER = re.compile(r"\b(after|afterwards|following|next)\b", re.IGNORECASE)
_NAME = re.compile(r"(?<![.!?] )(?<!^)\b[A-Z][a-z]{2,}\b")
# A question about the robot's own words ("the five bottles you recommended", "our previous
# chat about ..."): its answer is in what the robot said, not in the person's turns.
_ASKS_ROBOT = re.compile(
    r"\b(?:you|your)\s+(?:\w+\s+)?(?:recommended|suggested|told|said|mentioned|gave|provided|"
    r"listed|shared|explained|described|created|wrote|came up|proposed|offered|advised|helped|"
    r"made|named)\b|\bour (?:\w+ )?(?:conversation|chat|discussion)\b|"
    r"\bwe (?:talked|discussed|chatted|spoke)\b|\byou remind me\b",
    re.IGNORECASE,
)
_RARE_WORD = re.compile(r"\b[a-z]{5,}\b")
# Not commas: a comma more often sets a question's context ("..., any suggestions?") apart
# than it lists the things asked about.
_CLAUSE = re.compile(r";|\band\b|\bor\b|\bbetween\b|\bthen\b|\bwhile\b", re.IGNORECASE)


def clauses(query: str, min_words: int = 2) -> list[str]:
    """The parts of a question that names several things, split at conjunctions ("Which
    happened first, the meeting with Rachel or the pride parade?" -> "Which happened first,
    the meeting with Rachel", "the pride parade"); none for a question that names one thing.
    Parts with fewer than `min_words` content words go."""
    parts = [p.strip(" ?.!'\"") for p in _CLAUSE.split(query)]
    kept = [p for p in parts if len(query_terms(p)) >= min_words]
    return kept if len(kept) >= 2 else []


class ScoreWeights(BaseModel):
    semantic: float = 0.6
    lexical: float = 0.15  # half the weight of v1: literal words mislead as often as not
    recency: float = 0.05
    person: float = 0.15  # questions are mostly about the asker's own life
    place: float = 0.15
    # Ranking order only: each result is placed by its score minus this times its cosine to
    # the speaker's closest later turn among the results, so a line said ten times ("the
    # beaches looked amazing") fills the budget once, and an updated fact shows its newest.
    # 0.15, not the generator's best 0.3: on real conversations (LongMemEval-S, all 120
    # questions) 0.3 and 0.2 push the user's own restated facts out of a 2k context; 0.15
    # keeps the generator's recall (docs/memory.md, real corpus).
    redundancy: float = 0.15
    redundancy_pool: int = 50  # best results reordered for redundancy, at least
    recency_half_life_s: float = 7 * 24 * 3600.0
    candidates: int = 250  # per channel (semantic, lexical) before fusion
    lexical_postings: int = 1500  # rowids the lexical channel reads per query, at most
    max_df: float = 0.2  # query terms in more than this share of turns are ignored
    speaker: float = 0.2  # a person's own words: the robot's rarely hold facts about them
    named: float = 0.15  # turns of a person the query names ("what did Bob say ...")
    named_people: bool = True  # look for people's names in the query at all
    link: float = 0.5  # a turn reached by a second hop: weight of the seed's score
    hop_seeds: int = 2  # best results whose names are followed (more follow wrong names)
    hop_terms: int = 1  # names followed per query, at most
    feedback: float = 0.5  # link of a turn found by the feedback scan: its cosine x this
    feedback_seeds: int = 3
    feedback_candidates: int = 30
    hop_max_df: float = 0.01  # only names rarer than this share of turns are followed
    hop_postings: int = 50  # turns read per name followed (the most recent)
    # The speaker part goes to the robot's turns when the question asks what the robot said
    # ("the bottles you recommended", "our chat about ..."): real conversations ask so.
    robot_words: bool = True
    hop_words: bool = False  # hops also follow rare lower-case words ("aquarium"), not only names
    # Multi-query: a question naming two things ("the meeting with Rachel or the pride
    # parade") is split into its clauses; each clause's vector scans too, and a turn's
    # semantic part is its best cosine to the question or, times this, to a clause.
    # 0 turns it off.
    subqueries: float = 0.0


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


Row = tuple[str, str | None, float, str | None, str]
"""What scoring reads of a turn: id, owner, time, place, speaker."""


@dataclass(frozen=True)
class _Scoring:
    now: float
    person: str | None
    named: set[str]
    mentioned: set[str]
    speaker: str = "user"  # whose turns the speaker part favours


@dataclass
class _Query:
    """One query in flight: what it may see and what has been scored so far. The steps
    after the first scan (hops, feedback, sequels) read and extend it."""

    keys: list[Partition]
    allowed: np.ndarray | None
    exclude: set[str] | frozenset[str]
    qvec: np.ndarray
    ctx: _Scoring
    scored: dict[int, tuple[float, tuple[float, ...]]]
    rows: dict[int, Row]
    semantic: dict[int, float]
    lexical: dict[int, float]


class Retriever:
    def __init__(
        self,
        store: MemoryStore,
        index: VectorSearch,
        embedder: Embedder,
        weights: ScoreWeights | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.embedder = embedder
        self.weights = weights or ScoreWeights()
        self._people: set[str] = set()
        self._people_rowid = -1
        self._people_n = -1
        self._subs: tuple[str, list[np.ndarray]] = ("", [])

    def people(self) -> set[str]:
        """Everyone with turns in the store; only new rows are read, and only when the
        store changed (a forgotten person may linger: it only names, never shows)."""
        if self.store.n_turns != self._people_n:
            self._people_n = self.store.n_turns
            new, self._people_rowid = self.store.people_after(self._people_rowid)
            self._people |= new
        return self._people

    def search(self, query: str, *, person: str | None, k: int = 10,
               **options: Any) -> list[SearchResult]:  # fmt: skip
        """The best `k` turns `person` may see for `query` (options: see `ranked`)."""
        return list(itertools.islice(self.ranked(query, person=person, k=k, **options), k))

    def ranked(
        self,
        query: str,
        *,
        person: str | None,
        k: int = 10,
        now: float | None = None,
        filters: Filters | None = None,
        exclude: set[str] | frozenset[str] | None = None,
        query_vector: np.ndarray | None = None,
        hops: bool = False,
        sequels: bool = False,
        feedback: bool = False,
        explain: bool = True,
    ) -> Iterator[SearchResult]:
        """The best `k` turns `person` may see for `query`, best first, lazily: full rows
        are read in small batches, so a caller that stops early reads only what it used.

        `query_vector`: the query's embedding when the caller already has it (computed
        once per turn, possibly before the person has finished speaking).
        `hops`: follow the rare names in the best results one step further (multi-hop:
        "my cousin" finds "my cousin Nadia", and "Nadia moved to Porto" is reached through
        the name). One or two FTS lookups, no second embedding.
        `sequels`: when the query asks what came after something ("the weekend after the
        trip"), the person's words in the session that followed the best matches.
        `explain=False` leaves `reason` empty (see `explain`): a caller that keeps only some
        results explains only those.
        `feedback`: a second vector scan for the query moved towards the best matches
        (pseudo-relevance feedback), for questions whose evidence is several turns alike
        ("which pastimes have I taken up?").
        """
        w = self.weights
        now = _time.time() if now is None else now
        filters = filters or Filters()
        allowed: np.ndarray | None = None
        if filters.active:
            allowed = np.array(
                self.store.rowids_where(filters.place, filters.since, filters.until), np.int64
            )
        keys = self.visible_keys(person)
        qvec = self.embedder.embed_one(query) if query_vector is None else query_vector
        semantic = dict(self.index.search(qvec, keys, w.candidates, allowed))
        subs = self._subquery_vectors(query) if w.subqueries > 0 else []
        # Each clause's own nearest turns join the candidates.
        near = [r for v in subs for r, _ in self.index.search(v, keys, w.candidates // 2, allowed)]
        lexical = self._lexical(query, keys, allowed)
        exclude = exclude or set()
        rows: dict[int, Row] = self.store.scoring_rows(dict.fromkeys([*semantic, *near, *lexical]))
        rows = {r: v for r, v in rows.items() if v[0] not in exclude}
        if not rows:
            return iter(())
        semantic.update(self.index.score_rows(qvec, keys, [r for r in rows if r not in semantic]))
        for svec in subs:  # a candidate's semantic part: its best cosine, question or clause
            for r, c in self.index.score_rows(svec, keys, list(rows)).items():
                semantic[r] = max(semantic[r], w.subqueries * c)
        ctx = _Scoring(
            now=now,
            person=key_of(person),
            named=self._named_people(query, person),
            mentioned=self._mentioned_places(query),
            speaker="robot" if w.robot_words and _ASKS_ROBOT.search(query) else "user",
        )
        scored = self._score_all(ctx, rows, semantic, lexical)
        q = _Query(keys, allowed, exclude, qvec, ctx, scored, rows, semantic, lexical)
        if hops:
            self._hop(query, q)
        if feedback:
            self._feedback(q)
        if sequels and _AFTER.search(query):
            self._sequel(q)
        # Best first; ties: older first, then id (deterministic).
        ranked = sorted((-score, rows[r][2], rows[r][0], r) for r, (score, _) in scored.items())
        if w.redundancy > 0:  # within a pool, so the first results do not depend on k
            ranked = self._diversified(ranked[: max(k, w.redundancy_pool)], rows, keys, w)
        return self._results(ranked[:k], scored, set(query_terms(query)), now, explain)

    def _subquery_vectors(self, query: str) -> list[np.ndarray]:
        """The vectors of the question's clauses (`clauses`), one batch, cached per
        question: a question asked again (speculative recall, then the final transcript)
        embeds them once."""
        parts = clauses(query)
        if not parts:
            return []
        if self._subs[0] != query:
            self._subs = (query, list(self.embedder.embed(parts)))
        return self._subs[1]

    def _diversified(
        self,
        ranked: list[tuple[float, float, str, int]],
        rows: dict[int, Row],
        keys: list[Partition],
        w: ScoreWeights,
    ) -> list[tuple[float, float, str, int]]:
        """`ranked` reordered by score minus `redundancy` x the cosine to the closest later
        turn of the same speaker (a person, or the robot talking to them): a line said
        again, or a fact restated with a new value ("the clutch needs replacing" ... "the
        alternator needs replacing"), gives way to its newest version. A later turn counts
        only if it stays ahead of the one it pushes down (its score at least that one's
        value), so nothing sinks below the version that replaced it. Other people's alike
        words are not redundant: theirs is another life. Scores are unchanged."""
        ids = [r for *_, r in ranked]
        newest_first = np.lexsort((ids, [rows[r][2] for r in ids]))[::-1]
        vecs = self.index.vectors(keys, [ids[i] for i in newest_first])
        score = -np.array([neg for neg, *_ in ranked])
        speakers = [(rows[ids[i]][1], rows[ids[i]][4]) for i in newest_first]
        closest = np.zeros(len(ids))
        for speaker in set(speakers):
            mine = [n for n, who in enumerate(speakers) if who == speaker]
            at = newest_first[mine]
            own, own_scores = vecs[mine], score[at]
            # Row by row: small products stay on one thread, where one 150 x 150 product
            # spreads over OpenBLAS threads that then spin through the rest of the build.
            for n in range(1, len(mine)):
                alike = own[:n] @ own[n]
                ahead = own_scores[:n] >= own_scores[n] - w.redundancy * alike
                if ahead.any():
                    closest[at[n]] = max(0.0, float(alike[ahead].max()))
        value = score - w.redundancy * closest
        return [ranked[i] for i in np.argsort(-value, kind="stable")]

    def _results(
        self,
        top: list[tuple[float, float, str, int]],
        scored: dict[int, tuple[float, tuple[float, ...]]],
        terms: set[str],
        now: float,
        explain: bool,
        batch: int = 40,
    ) -> Iterator[SearchResult]:
        # Full rows (text, captions) only for what is consumed, a batch at a time.
        for start in range(0, len(top), batch):
            chunk = top[start : start + batch]
            turns = self.store.turns_by_rowid(r for *_, r in chunk)
            for neg, _, turn_id, rowid in chunk:
                parts = dict(zip(PARTS, scored[rowid][1], strict=True))
                # Built from validated rows: constructed without validating them again.
                yield SearchResult.model_construct(
                    turn_id=turn_id,
                    score=-neg,
                    parts=parts,
                    reason=self._reason(turns[rowid], parts, terms, now) if explain else "",
                    turn=turns[rowid].turn,
                )

    @staticmethod
    def visible_keys(person: str | None) -> list[Partition]:
        """Index partitions `person` may see: their own and the shared one (None)."""
        return [None] if person is None else [person_key(person), None]

    def _score_all(
        self,
        ctx: _Scoring,
        rows: dict[int, Row],
        semantic: dict[int, float],
        lexical: dict[int, float],
    ) -> dict[int, tuple[float, tuple[float, ...]]]:
        """`_score` of every candidate at once, in numpy (the same values, rounded alike)."""
        w = self.weights
        ids = list(rows)
        meta = list(rows.values())
        values = np.zeros((len(ids), len(PARTS)))
        values[:, 0] = np.maximum(0.0, [semantic.get(r, 0.0) for r in ids])
        values[:, 1] = [lexical.get(r, 0.0) for r in ids]
        age = np.maximum(0.0, ctx.now - np.array([m[2] for m in meta], np.float64))
        values[:, 2] = 0.5 ** (age / w.recency_half_life_s)
        values[:, 3] = [ctx.person is not None and m[1] == ctx.person for m in meta]
        values[:, 4] = [m[3] is not None and m[3].lower() in ctx.mentioned for m in meta]
        values[:, 6] = [m[4] == ctx.speaker for m in meta]
        values[:, 7] = [m[1] is not None and m[1] in ctx.named for m in meta]
        values = np.round(values, 6)
        weights = np.array([getattr(w, name) for name in PARTS])
        scores = np.round(values @ weights, 6)
        return {
            r: (float(sc), tuple(v))
            for r, sc, v in zip(ids, scores.tolist(), values.tolist(), strict=True)
        }

    def _hop(self, query: str, q: _Query) -> None:
        """Second hop: turns naming a rare name found in the best results get a link."""
        w = self.weights
        scored = q.scored
        seeds = sorted(scored, key=lambda r: -scored[r][0])[: w.hop_seeds]
        texts = {r: st.turn.text for r, st in self.store.turns_by_rowid(seeds).items()}
        asked = {t.lower() for t in query_terms(query)} | {p.lower() for p in self.people()}
        cutoff = max(2, int(w.hop_max_df * max(1, self.store.n_turns)))
        links: dict[str, float] = {}
        for r in seeds:
            text = texts.get(r, "")
            found = _NAME.findall(text) + (_RARE_WORD.findall(text) if w.hop_words else [])
            for name in found:
                term = name.lower()
                if term in asked or term in STOPWORDS:
                    continue
                links[term] = max(links.get(term, 0.0), scored[r][0])
        followed = sorted(links, key=lambda t: -links[t])[: w.hop_terms]
        reached: dict[int, float] = {}
        for term in followed:
            if self.store.document_frequency(term, cutoff + 1) > cutoff:
                continue
            hits = self.store.lexical(term, w.hop_postings, 1.0)  # its latest mentions
            if len(hits.rowids) == 0:
                continue
            keep = self.index.visible(q.keys, hits.rowids)
            if q.allowed is not None:
                keep &= np.isin(hits.rowids, q.allowed)
            for r in hits.rowids[keep].tolist():
                reached[r] = max(reached.get(r, 0.0), links[term])
        if reached:
            self._link(reached, q)

    def _feedback(self, q: _Query) -> None:
        w = self.weights
        scored, rows = q.scored, q.rows
        best = [r for r in sorted(scored, key=lambda r: -scored[r][0]) if rows[r][4] == "user"]
        seeds = self.index.vectors(q.keys, best[: w.feedback_seeds])
        seeds = seeds[np.any(seeds, axis=1)]  # rows without a vector come back as zeros
        if len(seeds) == 0:
            return
        moved = q.qvec + seeds.mean(axis=0)
        moved /= max(float(np.linalg.norm(moved)), 1e-9)
        found = dict(self.index.search(moved, q.keys, w.feedback_candidates, q.allowed))
        reached = {r: w.feedback * c for r, c in found.items()}
        self._link(reached, q)

    def _sequel(
        self, q: _Query, seeds: int = 2, per_seed: int = 6, within_s: float = 14 * 86400
    ) -> None:
        """The person's words in the session after each of the best user-turn matches."""
        scored, rows = q.scored, q.rows
        best = [r for r in sorted(scored, key=lambda r: -scored[r][0]) if rows[r][4] == "user"]
        reached: dict[int, float] = {}
        for seed in best[:seeds]:
            _, owner, when, _, _ = rows[seed]
            nxt: str | None = None
            for st in self.store.turns_after(owner, seed, 80):
                t = st.turn
                if t.time - when > within_s:
                    break
                if t.session == self._session_of(seed) or t.speaker != "user":
                    continue
                if nxt is None:
                    nxt = t.session
                if t.session != nxt:
                    break
                reached[st.rowid] = max(reached.get(st.rowid, 0.0), scored[seed][0])
                if sum(1 for _ in reached) >= per_seed * seeds:
                    break
        if reached:
            visible = self.index.visible(q.keys, np.array(sorted(reached), np.int64))
            keep = {
                r: reached[r] for r, ok in zip(sorted(reached), visible.tolist(), strict=True) if ok
            }
            self._link(keep, q)

    def _session_of(self, rowid: int) -> str | None:
        st = self.store.turns_by_rowid([rowid]).get(rowid)
        return st.turn.session if st else None

    def _link(self, reached: dict[int, float], q: _Query) -> None:
        """Score turns reached through a better result, with that result's score as link."""
        scored, rows, semantic = q.scored, q.rows, q.semantic
        fresh = self.store.scoring_rows([r for r in reached if r not in rows])
        fresh = {r: v for r, v in fresh.items() if v[0] not in q.exclude}
        rows.update(fresh)
        semantic.update(self.index.score_rows(q.qvec, q.keys, list(fresh)))
        linked = {
            r: link
            for r, link in reached.items()
            if r in rows and link > scored.get(r, (0.0, (0.0,) * len(PARTS)))[1][5]
        }
        base = self._score_all(q.ctx, {r: rows[r] for r in linked}, semantic, q.lexical)
        weight = self.weights.link
        for r, (score, values) in base.items():
            part = round(min(1.0, linked[r]), 6)
            link_values = (*values[:5], part, *values[6:])
            scored[r] = (round(score + weight * part, 6), link_values)

    def _named_people(self, query: str, person: str | None) -> set[str]:
        """Anyone other than the asker whom the query names ("what did Bob say ...").
        The people are kept in memory (no SQL per query)."""
        if not self.weights.named_people:
            return set()
        words = set(re.findall(r"\w+", query.lower()))
        asker = key_of(person)
        return {
            person_key(k) for k in self.people() if k.lower() in words and person_key(k) != asker
        }

    def _lexical(
        self, query: str, keys: list[Partition], allowed: np.ndarray | None
    ) -> dict[int, float]:
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

    def explain(self, result: SearchResult, query: str, now: float | None = None) -> str:
        """Why `result` was chosen (its `reason`), for results ranked with explain=False."""
        now = _time.time() if now is None else now
        st = StoredTurn(rowid=0, turn=result.turn)
        return self._reason(st, result.parts, set(query_terms(query)), now)

    @staticmethod
    def _reason(st: StoredTurn, parts: dict[str, float], terms: set[str], now: float) -> str:
        bits = [f"semantic {parts['semantic']:.2f}"]
        text = (st.turn.text + " " + (st.turn.image_caption or "")).lower()
        # FTS5 stems ("keys" matches "key"): show the query words that share a stem prefix.
        prefixes = {w[:4] for w in _WORDS.findall(text)}
        hits = sorted(t for t in terms if t[:4] in prefixes)
        if parts["lexical"] > 0 and hits:
            bits.append("words " + ", ".join(hits[:4]))
        if parts["place"]:
            bits.append(f"at {st.turn.place}")
        if parts["link"]:
            bits.append("linked by a name in a better result")
        if parts["person"]:
            bits.append(f"{st.turn.person}'s own turn")
        elif parts["named"]:
            bits.append(f"{st.turn.person}, named in the question")
        elif st.turn.shared:
            bits.append("shared")
        if st.turn.image_caption:
            bits.append("has image")
        when = datetime.fromtimestamp(st.turn.time, tz=timezone.utc).strftime("%Y-%m-%d")
        bits.append(f"{_ago(max(0.0, now - st.turn.time))} ({when})")
        return "; ".join(bits)

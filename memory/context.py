"""Token-budgeted context building, with memory strategies pluggable by name.

Order inside a context: the rolling summary, then retrieved evidence (oldest first), then
recent turns in full (most recent last). Every item says why it is there. Given the same
store and arguments a builder returns the same context: no randomness, stable tie-breaks.

Token estimate: `ceil(words * 1.3)` per item, plus `IMAGE_TOKENS` per attached image.
It is deterministic and tokenizer-free on purpose; 1.3 tokens per English word is close
to BPE tokenizers (Qwen, Llama) and errs on the generous side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

import numpy as np

from memory.protocol import MemoryStore
from memory.retrieval import Retriever
from memory.sql_store import StoredTurn
from memory.types import Context, ContextItem, MemoryTurn, SearchResult

IMAGE_TOKENS = 64  # one 448x448 tile of InternViT in InteractiveOmni
MIN_TURN_TOKENS = 6  # a rendered turn costs at least this ("alice: Yes, thanks." is 4 words)


def count_tokens(text: str) -> int:
    return math.ceil(len(text.split()) * 1.3)


def render_turn(turn: MemoryTurn) -> str:
    """One line per turn: when, where, who, what was said, and what was shown."""
    when = datetime.fromtimestamp(turn.time, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
    where = f", {turn.place}" if turn.place else ""
    who = "Robot" if turn.speaker == "robot" else (turn.person or "User")
    if turn.speaker == "robot" and turn.person:
        who = f"Robot to {turn.person}"
    line = f"[{when}{where}] {who}: {turn.text}"
    if turn.interrupted:
        line += " (interrupted)"
    if turn.image_caption:
        line += f" [shown: {turn.image_caption}]"
    return line


def render_compact(turn: MemoryTurn) -> str:
    """A turn without its date and place: those go once in its session's header."""
    who = "Robot" if turn.speaker == "robot" else (turn.person or "User")
    line = f"{who}: {turn.text}"
    if turn.interrupted:
        line += " (interrupted)"
    if turn.image_caption:
        line += f" [shown: {turn.image_caption}]"
    return line


def session_header(turn: MemoryTurn) -> str:
    """`[Sat 2026-03-07, kitchen]`: the weekday answers "the weekend after ..." questions."""
    when = datetime.fromtimestamp(turn.time, tz=timezone.utc).strftime("%a %Y-%m-%d")
    return f"[{when}, {turn.place}]" if turn.place else f"[{when}]"


@dataclass(frozen=True)
class ContextRequest:
    query: str
    person: str | None
    budget: int
    now: float | None
    images: bool
    exclude: frozenset[str] = frozenset()
    """Turn ids the model already sees (the conversation window): never spent on."""
    query_vector: np.ndarray | None = field(default=None, compare=False)
    """The query's embedding when the caller has it (computed once per turn)."""


class ContextStrategy(Protocol):
    """A memory strategy: turns a request into a context within its budget."""

    def build(self, request: ContextRequest) -> Context: ...


class _Packer:
    """Adds items while they fit; the one place the budget is enforced."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0

    def cost(self, text: str, image: str | None) -> int:
        return count_tokens(text) + (IMAGE_TOKENS if image else 0)

    def fits(self, cost: int, limit: int | None = None) -> bool:
        cap = self.budget if limit is None else min(self.budget, limit)
        return self.used + cost <= cap

    def take(self, cost: int) -> None:
        self.used += cost
        assert self.used <= self.budget


@dataclass(frozen=True)
class Shares:
    """How a strategy splits its budget (fractions of the whole budget), and how it picks
    and renders evidence. Each option is measured in docs/memory.md (the ablation)."""

    summary: float
    recent: float
    evidence: bool
    backfill_recent: bool  # give what evidence left unused to older recent turns
    evidence_k: int = 60
    compact: bool = False  # evidence grouped by session: date and place once per session
    hops: bool = False  # follow rare names in the best results (multi-hop)
    neighbours: int = 0  # the next turn of the same session after each of the best N hits
    sequels: bool = False  # "what did I do after X": the person's words in the next session
    feedback: bool = False  # a second scan towards the best matches (several alike turns)
    dedupe: bool = False  # a text already in the context (the robot repeats itself) is skipped
    dedupe_by_person: bool = False  # people's words are duplicates only from the same person
    sessions: int = 0  # session-then-turn: the best N sessions lift their turns (and bring
    # the person's other turns of those sessions)
    session_weight: float = 0.5  # how much a session's score lifts its turns
    session_fill: bool = True  # the best sessions bring the person's unmatched turns too


class BudgetedStrategy:
    """Summary, evidence and recent turns in fixed shares: all built-in strategies."""

    def __init__(self, store: MemoryStore, retriever: Retriever, shares: Shares) -> None:
        self.store = store
        self.retriever = retriever
        self.shares = shares
        self._headers: dict[tuple[float, str | None], str] = {}

    def build(self, request: ContextRequest) -> Context:
        s = self.shares
        pack = _Packer(max(0, request.budget))
        summary_items = self._summary(request, pack, int(request.budget * s.summary))

        # Turns the model already sees are excluded here, before any budget is spent.
        # Recent turns are chosen first (they are the conversation) but placed last.
        recent_cap = int(request.budget * s.recent) + pack.used
        recent = self._recent(request, pack, recent_cap, skip=set(request.exclude))
        recent_ids = {st.turn.id for st, _ in recent}

        evidence: list[tuple[SearchResult, str | None]] = []
        if s.evidence and pack.used < pack.budget:
            results: Iterable[SearchResult] = self.retriever.ranked(
                request.query,
                person=request.person,
                k=s.evidence_k,
                now=request.now,
                exclude=recent_ids | request.exclude,
                query_vector=request.query_vector,
                hops=s.hops,
                sequels=s.sequels,
                feedback=s.feedback,
                explain=False,  # only the evidence kept is explained, below
            )
            if s.neighbours:
                results = self._with_neighbours(list(results), request, recent_ids)
            if s.sessions:
                results = self._by_session(list(results), request, recent_ids)
            groups: set[tuple[str | None, str]] = set()
            texts: set[str] = set()
            for r in results:
                if pack.budget - pack.used < MIN_TURN_TOKENS:
                    break  # nothing more fits: read no further rows
                if s.dedupe:
                    # The robot's repeated lines go once; people's lines once per person
                    # (two people may say the same words about different lives).
                    who = r.turn.person if s.dedupe_by_person and r.turn.speaker == "user" else ""
                    said = f"{r.turn.speaker}:{who}:{' '.join(r.turn.text.lower().split())}"
                    if said in texts:
                        continue
                    texts.add(said)
                image = r.turn.image_path if request.images else None
                if s.compact:
                    cost = pack.cost(render_compact(r.turn), image)
                    group = (r.turn.session, self._header(r.turn))
                    if group not in groups:  # its header, once per session (and place)
                        cost += count_tokens(group[1])
                else:
                    cost = pack.cost(render_turn(r.turn), image)
                if pack.fits(cost):
                    pack.take(cost)
                    if r.parts:  # turns brought by their session already say why
                        r.reason = self.retriever.explain(r, request.query, request.now)
                    evidence.append((r, image))
                    if s.compact:
                        groups.add((r.turn.session, self._header(r.turn)))

        if s.backfill_recent and recent:
            taken = recent_ids | {r.turn_id for r, _ in evidence} | request.exclude
            first = recent[0][0]
            older = self._recent(
                request, pack, pack.budget, skip=taken, before=(first.turn.time, first.rowid)
            )
            recent = older + recent

        items = summary_items
        shown = self._evidence_items(evidence)
        recent_items = [self._recent_item(st, image) for st, image in recent]
        used = sum(pack.cost(i.text, i.image_path) for i in [*items, *recent_items])
        # Headers are reserved per group at packing; when interleaved groups repeat one,
        # the least relevant evidence goes until the context fits again (rare).
        while shown and used + sum(pack.cost(i.text, i.image_path) for i in shown) > pack.budget:
            evidence.pop()  # taken in rank order: the last is the least relevant
            shown = self._evidence_items(evidence)
        items.extend(shown)
        items.extend(recent_items)
        tokens = sum(pack.cost(i.text, i.image_path) for i in items)
        return Context(items=items, tokens=tokens, budget=request.budget)

    def _evidence_items(self, evidence: list[tuple[SearchResult, str | None]]) -> list[ContextItem]:
        """Evidence oldest first; compact: a header each time the session or place changes."""
        out: list[ContextItem] = []
        previous: tuple[str | None, str] | None = None
        for r, image in sorted(evidence, key=lambda e: (e[0].turn.time, e[0].turn_id)):
            if self.shares.compact:
                group = (r.turn.session, self._header(r.turn))
                text = render_compact(r.turn)
                if group != previous:
                    text = f"{group[1]} {text}"
                previous = group
            else:
                text = render_turn(r.turn)
            out.append(
                ContextItem(
                    kind="evidence",
                    turn_id=r.turn_id,
                    text=text,
                    image_path=image,
                    score=r.score,
                    reason=r.reason,
                )
            )
        return out

    def _header(self, turn: MemoryTurn) -> str:
        key = (turn.time // 86400, turn.place)  # the header names only the day and place
        if key not in self._headers:
            if len(self._headers) > 4096:
                self._headers.clear()
            self._headers[key] = session_header(turn)
        return self._headers[key]

    @staticmethod
    def _recent_item(st: StoredTurn, image: str | None) -> ContextItem:
        return ContextItem(
            kind="recent",
            turn_id=st.turn.id,
            text=render_turn(st.turn),
            image_path=image,
            score=None,
            reason="recent turn",
        )

    def _with_neighbours(
        self, results: list[SearchResult], request: ContextRequest, skip: set[str]
    ) -> list[SearchResult]:
        """Each of the best hits followed by the next turn of its session (the answer to
        a question, the detail after a topic), when the asker may see it."""
        best = results[: self.shares.neighbours]
        at = {r.turn_id: self.store.get_turn(r.turn_id) for r in best}
        after = [st.rowid + 1 for st in at.values() if st is not None]
        found = self.store.turns_by_rowid(after)
        keys = self.retriever.visible_keys(request.person)
        mask = self.retriever.index.visible(keys, np.array(after, np.int64))
        visible = {rid for rid, ok in zip(after, mask.tolist(), strict=True) if ok}
        have = {r.turn_id for r in results} | skip | request.exclude
        out: list[SearchResult] = []
        for r in results:
            out.append(r)
            st0 = at.get(r.turn_id)
            nxt = found.get(st0.rowid + 1) if st0 is not None else None
            if (
                nxt is not None
                and nxt.rowid in visible
                and nxt.turn.session == r.turn.session
                and nxt.turn.id not in have
            ):
                have.add(nxt.turn.id)
                out.append(
                    SearchResult(
                        turn_id=nxt.turn.id,
                        score=r.score,
                        parts=r.parts,
                        reason=f"follows {r.turn_id}",
                        turn=nxt.turn,
                    )
                )
        return out

    def _by_session(
        self, results: list[SearchResult], request: ContextRequest, skip: set[str], span: int = 24
    ) -> list[SearchResult]:
        """Session-then-turn: sessions are scored by their two best turns, and each turn is
        lifted by its session's score, so the evidence of one conversation comes together
        (a question's facts are often told in one session, a few turns apart). The best
        sessions also bring the person's turns that did not match the question's words."""
        s = self.shares
        by_session: dict[str, list[float]] = {}
        for r in results:
            if r.turn.session is not None:
                by_session.setdefault(r.turn.session, []).append(r.score)
        score = {k: v[0] + 0.5 * (v[1] if len(v) > 1 else 0.0) for k, v in by_session.items()}
        best = sorted(score, key=lambda k: -score[k])[: s.sessions]
        lifted = [
            (r.score + s.session_weight * score.get(r.turn.session or "", 0.0), r) for r in results
        ]
        have = {r.turn_id for r in results} | skip | request.exclude
        # The other user turns of the best sessions: rows near each session's best match
        # (a session's turns are stored together), when the asker may see them.
        seeds = {}
        for r in results:
            if r.turn.session in best and r.turn.session not in seeds:
                seeds[r.turn.session] = r
        at = {k: self.store.get_turn(r.turn_id) for k, r in seeds.items()}
        near = sorted(
            {
                x
                for st in at.values()
                if st is not None
                for x in range(st.rowid - span, st.rowid + span + 1)
            }
        )
        if near and s.session_fill:
            found = self.store.turns_by_rowid(near)
            keys = self.retriever.visible_keys(request.person)
            ids = np.array(sorted(found), np.int64)
            mask = self.retriever.index.visible(keys, ids)
            for rowid, ok in zip(ids.tolist(), mask.tolist(), strict=True):
                st = found[rowid]
                t = st.turn
                if not ok or t.session not in seeds or t.speaker != "user" or t.id in have:
                    continue
                if request.now is not None and t.time > request.now:
                    continue
                have.add(t.id)
                lift = s.session_weight * score[t.session]
                lifted.append(
                    (
                        lift,
                        SearchResult.model_construct(
                            turn_id=t.id,
                            score=lift,
                            parts={},
                            reason=f"same session as {seeds[t.session].turn_id}",
                            turn=t,
                        ),
                    )
                )
        lifted.sort(key=lambda x: (-x[0], x[1].turn.time, x[1].turn_id))
        return [r for _, r in lifted]

    def _summary(self, request: ContextRequest, pack: _Packer, cap: int) -> list[ContextItem]:
        if cap <= 0:
            return []
        summary = self.store.latest_summary(request.person)
        if summary is None:
            return []
        words = ["Summary", "so", "far:", *summary.text.split()]
        # Trim from the front: a rolling summary's newest sentences are at its end.
        while words and count_tokens(" ".join(words)) > cap:
            words = words[:3] + words[4:] if len(words) > 3 else []
        text = " ".join(words)
        if len(words) <= 3:
            return []
        cost = pack.cost(text, None)
        if not pack.fits(cost):
            return []
        pack.take(cost)
        who = summary.person or "everyone"
        return [
            ContextItem(
                kind="summary",
                turn_id=None,
                text=text,
                score=None,
                reason=f"rolling summary for {who}",
            )
        ]

    def _recent(
        self,
        request: ContextRequest,
        pack: _Packer,
        cap: int,
        skip: set[str],
        before: tuple[float, int] | None = None,
    ) -> list[tuple[StoredTurn, str | None]]:
        """The newest turns that fit under `cap`, oldest first. Stops at the first turn
        that does not fit, so the window stays contiguous."""
        out: list[tuple[StoredTurn, str | None]] = []
        batch = 8  # a small share needs a few turns; a long window doubles its way there
        while True:
            turns = self.store.recent_turns(request.person, batch, until=request.now, before=before)
            for st in turns:  # newest first
                before = (st.turn.time, st.rowid)
                if st.turn.id in skip:
                    continue
                image = st.turn.image_path if request.images else None
                cost = pack.cost(render_turn(st.turn), image)
                if not pack.fits(cost, cap):
                    return out
                pack.take(cost)
                out.insert(0, (st, image))
            if len(turns) < batch:
                return out
            batch = min(2 * batch, 256)


SHARES: dict[str, Shares] = {
    "window": Shares(summary=0.0, recent=1.0, evidence=False, backfill_recent=False),
    "summary": Shares(summary=0.25, recent=1.0, evidence=False, backfill_recent=False),
    "retrieval": Shares(summary=0.0, recent=0.0, evidence=True, backfill_recent=False),
    # Most questions are about long ago (docs/memory.md, the ablation): a small recent
    # share, and name hops only from the two best results (ScoreWeights.hop_seeds).
    "hybrid": Shares(
        summary=0.05,
        recent=0.05,
        evidence=True,
        backfill_recent=True,
        evidence_k=150,
        compact=True,
        hops=True,
        sequels=True,
        dedupe=True,
        dedupe_by_person=True,
    ),
}

StrategyFactory = Callable[[MemoryStore, Retriever], ContextStrategy]


def _budgeted(shares: Shares) -> StrategyFactory:
    def factory(store: MemoryStore, retriever: Retriever) -> ContextStrategy:
        return BudgetedStrategy(store, retriever, shares)

    return factory


STRATEGIES: dict[str, StrategyFactory] = {name: _budgeted(s) for name, s in SHARES.items()}


def register_strategy(name: str, factory: StrategyFactory) -> None:
    """Make a new strategy selectable by name (config `memory.strategy`)."""
    STRATEGIES[name] = factory


def make_strategy(name: str, store: MemoryStore, retriever: Retriever) -> ContextStrategy:
    try:
        factory = STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown memory strategy {name!r}: choose one of {known}") from None
    return factory(store, retriever)

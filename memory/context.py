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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from memory.retrieval import Retriever
from memory.store import Store, StoredTurn
from memory.types import Context, ContextItem, MemoryTurn, SearchResult

IMAGE_TOKENS = 64  # one 448x448 tile of InternViT in InteractiveOmni


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


@dataclass(frozen=True)
class ContextRequest:
    query: str
    person: str | None
    budget: int
    now: float | None
    images: bool


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
    """How a strategy splits its budget (fractions of the whole budget)."""

    summary: float
    recent: float
    evidence: bool
    backfill_recent: bool  # give what evidence left unused to older recent turns
    evidence_k: int = 60


class BudgetedStrategy:
    """Summary, evidence and recent turns in fixed shares: all four built-in strategies."""

    def __init__(self, store: Store, retriever: Retriever, shares: Shares) -> None:
        self.store = store
        self.retriever = retriever
        self.shares = shares

    def build(self, request: ContextRequest) -> Context:
        s = self.shares
        pack = _Packer(max(0, request.budget))
        summary_items = self._summary(request, pack, int(request.budget * s.summary))

        # Recent turns are chosen first (they are the conversation) but placed last.
        recent_cap = int(request.budget * s.recent) + pack.used
        recent = self._recent(request, pack, recent_cap, skip=set())
        recent_ids = {st.turn.id for st, _ in recent}

        evidence: list[tuple[SearchResult, int, str | None]] = []
        if s.evidence and pack.used < pack.budget:
            results = self.retriever.search(
                request.query,
                person=request.person,
                k=s.evidence_k,
                now=request.now,
                exclude=recent_ids,
            )
            for r in results:
                image = r.turn.image_path if request.images else None
                cost = pack.cost(render_turn(r.turn), image)
                if pack.fits(cost):
                    pack.take(cost)
                    evidence.append((r, cost, image))

        if s.backfill_recent and recent:
            taken = recent_ids | {r.turn_id for r, _, _ in evidence}
            first = recent[0][0]
            older = self._recent(
                request, pack, pack.budget, skip=taken, before=(first.turn.time, first.rowid)
            )
            recent = older + recent

        items = summary_items
        for r, _, image in sorted(evidence, key=lambda e: (e[0].turn.time, e[0].turn_id)):
            items.append(
                ContextItem(
                    kind="evidence",
                    turn_id=r.turn_id,
                    text=render_turn(r.turn),
                    image_path=image,
                    score=r.score,
                    reason=r.reason,
                )
            )
        for st, image in recent:
            items.append(
                ContextItem(
                    kind="recent",
                    turn_id=st.turn.id,
                    text=render_turn(st.turn),
                    image_path=image,
                    score=None,
                    reason="recent turn",
                )
            )
        return Context(items=items, tokens=pack.used, budget=request.budget)

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
        batch = 32
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


SHARES: dict[str, Shares] = {
    "window": Shares(summary=0.0, recent=1.0, evidence=False, backfill_recent=False),
    "summary": Shares(summary=0.25, recent=1.0, evidence=False, backfill_recent=False),
    "retrieval": Shares(summary=0.0, recent=0.0, evidence=True, backfill_recent=False),
    "hybrid": Shares(summary=0.1, recent=0.3, evidence=True, backfill_recent=True),
}

StrategyFactory = Callable[[Store, Retriever], ContextStrategy]


def _budgeted(shares: Shares) -> StrategyFactory:
    def factory(store: Store, retriever: Retriever) -> ContextStrategy:
        return BudgetedStrategy(store, retriever, shares)

    return factory


STRATEGIES: dict[str, StrategyFactory] = {name: _budgeted(s) for name, s in SHARES.items()}


def register_strategy(name: str, factory: StrategyFactory) -> None:
    """Make a new strategy selectable by name (config `memory.strategy`)."""
    STRATEGIES[name] = factory


def make_strategy(name: str, store: Store, retriever: Retriever) -> ContextStrategy:
    try:
        factory = STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown memory strategy {name!r}: choose one of {known}") from None
    return factory(store, retriever)

"""`Memory`: the one object the agent holds. Writes are durable on return; async writes
run on a single writer thread so they keep their order and never block the event loop."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from memory.backends import open_store
from memory.consolidate import Consolidator, ExtractiveSummarizer, Summarizer
from memory.context import ContextRequest, make_strategy
from memory.embeddings import Embedder, shared_embedder
from memory.names import person_name
from memory.protocol import MemoryStore, VectorSearch
from memory.retrieval import Filters, Retriever, ScoreWeights
from memory.sql_store import owner_key
from memory.types import Context, MemoryTurn, SearchResult
from memory.vectors import VectorIndex

log = logging.getLogger(__name__)


def embedding_text(turn: MemoryTurn) -> str:
    """What a turn's vector is computed from: its words and what was shown."""
    if turn.image_caption:
        return f"{turn.text} (shown: {turn.image_caption})"
    return turn.text


def _named(turn: MemoryTurn) -> MemoryTurn:
    """`turn` with its person's name accepted by the one rule (`names.person_name`):
    InvalidPersonName (a ValueError, one line) for a name no person can have."""
    if turn.person is None:
        return turn
    name = person_name(turn.person)
    return turn if name == turn.person else turn.model_copy(update={"person": name})


class Memory:
    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        strategy: str = "hybrid",
        summarizer: Summarizer | None = None,
        weights: ScoreWeights | None = None,
        consolidate_every: int = 40,
    ) -> None:
        self.store = store
        self.embedder = embedder
        # The backend's own vector search (pgvector), else an index kept in process.
        own = store.vector_index(embedder.dim, embedder.model_id)
        self._local: VectorIndex | None = None
        self.index: VectorSearch
        if own is None:
            self.index = self._local = VectorIndex(embedder.dim)
        else:
            self.index = own
        self.retriever = Retriever(store, self.index, embedder, weights)
        self.strategy_name = strategy
        self.strategy = make_strategy(strategy, store, self.retriever)
        self.consolidator = Consolidator(store, summarizer or ExtractiveSummarizer())
        self._consolidate_every = consolidate_every
        self._since_consolidation = 0
        self._consolidating: asyncio.Task[int] | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memory-writer")
        self._load_index()
        # What retrieval reads once and then caches (people, places, the scoring rows: a scan
        # of every turn) is read now, so the first question after a start is not the slow one.
        self.retriever.people()
        store.places()
        store.scoring_rows(())

    @classmethod
    def open(
        cls,
        path: str | Path,
        strategy: str = "hybrid",
        *,
        summarizer: Summarizer | None = None,
        embedder: Embedder | None = None,
    ) -> Memory:
        """The memory at `path`: a SQLite file, or a fleet's PostgreSQL URL."""
        store = open_store(path)
        try:
            return cls(store, embedder or shared_embedder(), strategy, summarizer)
        except BaseException as exc:
            store.close()
            if (error := store.failure(exc)) is not None:  # damage past what opening read
                raise error from None
            raise

    def _load_index(self) -> None:
        if self._local is not None:
            rows = self.store.vectors(self.embedder.model_id)
            with self._local.loading():
                while chunk := list(itertools.islice(rows, 65536)):  # bounded copies at 10^6
                    vecs = np.stack([v for *_, v in chunk])
                    self._local.add((r for r, _, _ in chunk), (k for _, k, _ in chunk), vecs)
        # Turns without vectors: written by an older schema, or imported by another tool.
        missing = self.store.turns_without_vectors(self.embedder.model_id)
        if missing:
            vecs = self.embedder.embed([embedding_text(st.turn) for st in missing])
            rowids = [st.rowid for st in missing]
            self.store.add_vectors(rowids, vecs, self.embedder.model_id)
            self.index.add(
                rowids, (owner_key(st.turn.person, st.turn.shared) for st in missing), vecs
            )

    def _follow_other_writers(self) -> None:
        """Bring the vector index up to date with turns other processes added or removed
        (checked once per query: one pragma when nothing changed)."""
        if self._local is None or not self.store.changed_elsewhere():
            return
        stored = dict(self.store.vector_rowids(self.embedder.model_id))
        held = set(self._local.rowids().tolist())
        gone = held - stored.keys()
        if gone:
            self.index.remove(gone)
        new = sorted(stored.keys() - held)
        if new:
            rows = self.store.vectors_of(new, self.embedder.model_id)
            if rows:
                vecs = np.stack([v for *_, v in rows])
                self.index.add((r for r, _, _ in rows), (k for _, k, _ in rows), vecs)

    # -- writes ---------------------------------------------------------------------------

    def add_turn(self, turn: MemoryTurn) -> None:
        """Store one turn (row, FTS, vector, media) in one transaction; durable on return."""
        self.add_turns([turn])

    def add_turns(self, turns: Sequence[MemoryTurn], embedder: Embedder | None = None) -> None:
        """Store many turns in one transaction (all or nothing), embedding them in batches
        (`embedder`: another instance of the same model, e.g. an import's on every core)."""
        if not turns:
            return
        turns = [_named(t) for t in turns]
        vecs = (embedder or self.embedder).embed([embedding_text(t) for t in turns])
        rowids = self.store.add_turns(turns, vecs, self.embedder.model_id)
        self.index.add(rowids, (owner_key(t.person, t.shared) for t in turns), vecs)
        self._since_consolidation += len(turns)

    async def add_turn_async(self, turn: MemoryTurn) -> None:
        """Store a turn off the event loop; consolidation follows in the background."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self.add_turn, turn)
        if self._since_consolidation >= self._consolidate_every and (
            self._consolidating is None or self._consolidating.done()
        ):
            self._since_consolidation = 0
            self._consolidating = asyncio.create_task(self.consolidate())

    async def consolidate(self) -> int:
        """Update rolling summaries and facts; failures are logged and retried next time."""
        try:
            return await self.consolidator.run_once()
        except Exception:
            log.warning("memory consolidation failed; turns are kept", exc_info=True)
            return 0

    def forget_person(self, person: str) -> int:
        """Delete all of `person`'s turns, vectors, FTS rows, summaries, facts and files."""
        count, rowids = self.store.forget_person(person)
        self.index.remove(rowids)
        return count

    # -- reads ----------------------------------------------------------------------------

    def build_context(
        self,
        query: str,
        *,
        person: str | None,
        budget_tokens: int,
        now: float | None = None,
        images: bool = False,
        exclude: Iterable[str] = (),
        query_vector: np.ndarray | None = None,
    ) -> Context:
        """`exclude`: turn ids the model already sees (its conversation window); they are
        left out before the budget is spent. `query_vector`: `embed_query(query)` when the
        caller computed it already (once per turn, possibly during speech)."""
        self._follow_other_writers()
        request = ContextRequest(
            query=query,
            person=person,
            budget=budget_tokens,
            now=now,
            images=images,
            exclude=frozenset(exclude),
            query_vector=query_vector,
        )
        return self.strategy.build(request)

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector, for `build_context(query_vector=...)` and `search`."""
        return self.embedder.embed_one(query)

    def search(
        self,
        query: str,
        *,
        person: str | None = None,
        k: int = 10,
        now: float | None = None,
        place: str | None = None,
        since: float | None = None,
        until: float | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[SearchResult]:
        self._follow_other_writers()
        return self.retriever.search(
            query,
            person=person,
            k=k,
            now=now,
            filters=Filters(place=place, since=since, until=until),
            query_vector=query_vector,
        )

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""What memory needs of a store and of a vector index, whatever the backend.

Two backends answer it: SQLite (memory/store.py: one file per robot, vectors searched in
process by memory/vectors.py) and PostgreSQL + pgvector (memory/pg_store.py: one database
for a fleet, vectors searched in the database); what they share is written once in
memory/sql_store.py. `Memory`, retrieval, context building and
consolidation are written against these protocols only, so they cannot come to depend
on one backend's SQL; the tests run the same behaviour on both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from memory.sql_store import LexicalHits, StoredTurn, StoreError, Summary
from memory.types import MemoryTurn
from memory.vectors import Partition


class VectorSearch(Protocol):
    """Cosine search over the turns' vectors, partitioned by who may see them."""

    def __len__(self) -> int: ...

    def add(self, rowids: Iterable[int], keys: Iterable[Partition], vecs: np.ndarray) -> None: ...

    def remove(self, rowids: Iterable[int]) -> None: ...

    def visible(self, keys: Iterable[Partition], rowids: np.ndarray) -> np.ndarray: ...

    def score_rows(
        self, query: np.ndarray, keys: Iterable[Partition], rowids: Iterable[int]
    ) -> dict[int, float]: ...

    def vectors(self, keys: Iterable[Partition], rowids: Iterable[int]) -> np.ndarray: ...

    def search(
        self,
        query: np.ndarray,
        keys: Iterable[Partition],
        k: int,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]: ...


class MemoryStore(Protocol):
    """Turns, summaries, facts and vectors of one memory, with the visibility rule applied
    by every read that takes a `person` (own, shared and unowned turns)."""

    @property
    def path(self) -> Path | str: ...

    @property
    def n_turns(self) -> int: ...

    def close(self) -> None: ...

    def failure(self, exc: BaseException) -> StoreError | None:
        """The one-line error for a failure of the database found past opening it (a
        damaged file), or None when `exc` is not one."""
        ...

    def changed_elsewhere(self) -> bool: ...

    def vector_index(self, dim: int, model: str) -> VectorSearch | None:
        """The backend's own vector search, or None: `Memory` then keeps one in process."""
        ...

    # writes
    def add_turns(
        self, turns: Sequence[MemoryTurn], vectors: np.ndarray | None, model: str
    ) -> list[int]: ...

    def add_vectors(self, rowids: Sequence[int], vectors: np.ndarray, model: str) -> None: ...

    def add_summary(
        self, person: str | None, shared: bool, text: str, last_turn: int, time: float
    ) -> None: ...

    def add_fact(
        self, person: str | None, text: str, source_turn: str | None, time: float
    ) -> None: ...

    def forget_person(self, person: str) -> tuple[int, list[int]]: ...

    # reads
    def get_turn(self, turn_id: str) -> StoredTurn | None: ...

    def turns_by_rowid(self, rowids: Iterable[int]) -> dict[int, StoredTurn]: ...

    def recent_turns(
        self,
        person: str | None,
        limit: int,
        until: float | None = None,
        before: tuple[float, int] | None = None,
    ) -> list[StoredTurn]: ...

    def iter_turns(self) -> Iterator[StoredTurn]: ...

    def turns_after(self, person: str | None, rowid: int, limit: int) -> list[StoredTurn]: ...

    def document_frequency(self, term: str, cap: int) -> int: ...

    def lexical(self, query: str, postings: int = 1500, max_df: float = 0.2) -> LexicalHits: ...

    def rowids_where(
        self, place: str | None, since: float | None, until: float | None
    ) -> list[int]: ...

    def scoring_rows(
        self, rowids: Iterable[int]
    ) -> dict[int, tuple[str, str | None, float, str | None, str]]: ...

    def vectors(self, model: str) -> Iterator[tuple[int, Partition, np.ndarray]]: ...

    def vector_rowids(self, model: str) -> Iterator[tuple[int, Partition]]: ...

    def vectors_of(
        self, rowids: Sequence[int], model: str
    ) -> list[tuple[int, Partition, np.ndarray]]: ...

    def turns_without_vectors(self, model: str) -> list[StoredTurn]: ...

    def places(self) -> list[str]: ...

    def people(self) -> list[str | None]: ...

    def people_after(self, rowid: int) -> tuple[set[str], int]: ...

    def latest_summary(self, person: str | None) -> Summary | None: ...

    def summary_watermark(self, person: str | None) -> int: ...

    def session_dates(self) -> dict[str, float]: ...

    def stats(self) -> dict[str, object]: ...

"""The memory store written once, over any SQL dialect.

Both backends (memory/store.py: SQLite, one file per robot; memory/pg_store.py:
PostgreSQL + pgvector, one database for a fleet) keep the same tables and columns, so
what a store does with them (the visibility rule, row mapping, idf scoring of lexical
hits, forgetting a person, summaries, facts, stats) lives here once. A backend supplies
only its connection handling, the few statements its dialect spells differently and its
indexes (FTS5 or a tsvector; vectors in process or pgvector): a fix made here holds for
both, and the same tests run on both.

SQL here is written with `?` placeholders; a backend whose driver wants another style
rewrites them where it executes (`SqlStore._read`, `SqlStore._write`).
"""

from __future__ import annotations

import math
import re
import threading
import time as _time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from memory.names import person_key
from memory.types import MemoryTurn
from memory.vectors import Partition, _room


class StoreError(RuntimeError):
    """A memory database that cannot be used: the message is one line saying what to do."""


class DuplicateTurnError(ValueError):
    pass


def owner_key(person: str | None, shared: bool) -> Partition:
    """The vector index partition of a turn: its person's key, None for everyone's."""
    return None if shared or person is None else person_key(person)


def partition(owner: str | None, shared: bool) -> Partition:
    """The partition of a stored row, from its `owner` column and shared flag."""
    return None if shared or owner is None else owner


def key_of(person: str | None) -> str | None:
    """The `owner` column value of a person (None: no person)."""
    return None if person is None else person_key(person)


def visible_where(asker: str | None, table: str = "") -> str:
    """The isolation rule, in one place for every backend: a person sees their own rows
    (`owner` is their `person_key`), shared rows and rows with no person. `asker` is the
    placeholder of the asker's key in the dialect (`?`, `%(person)s`), None for nobody."""
    t = f"{table}." if table else ""
    own = [f"{t}owner = {asker}"] if asker is not None else []
    return "(" + " OR ".join([*own, f"{t}shared", f"{t}person IS NULL"]) + ")"


# Times a turn may carry: what a UTC calendar date can show (years 1 to 9999). Anything
# else (NaN, infinity, year 10000) would be stored and then break every rendering.
TIME_MIN = datetime(1, 1, 2, tzinfo=timezone.utc).timestamp()
TIME_MAX = datetime(9999, 12, 30, tzinfo=timezone.utc).timestamp()


def check_time(value: float) -> float:
    """`value` if it is a finite unix time within years 1..9999, else ValueError."""
    if not math.isfinite(value) or not TIME_MIN <= value <= TIME_MAX:
        raise ValueError(f"time {value!r} is not a date between the years 1 and 9999")
    return value


ScoringRow = tuple[str, str | None, float, str | None, str]
"""What retrieval scores of a turn: id, owner key, time, place, speaker."""


@dataclass(frozen=True)
class StoredTurn:
    rowid: int
    turn: MemoryTurn


@dataclass(frozen=True)
class Summary:
    person: str | None
    shared: bool
    text: str
    last_turn: int
    time: float


# Words too common to be evidence: dropped from FTS queries so bm25 ranks on content words.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "about",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "do",
        "did",
        "does",
        "i",
        "you",
        "he",
        "she",
        "it",
        "we",
        "they",
        "me",
        "my",
        "your",
        "our",
        "his",
        "her",
        "its",
        "their",
        "them",
        "this",
        "that",
        "these",
        "those",
        "what",
        "which",
        "who",
        "whom",
        "where",
        "when",
        "why",
        "how",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "have",
        "has",
        "had",
        "not",
        "no",
        "yes",
        "so",
        "than",
        "then",
        "there",
        "here",
        "just",
        "very",
        "too",
        "also",
        "remember",
        "tell",
        "told",
        "please",
        "any",
        "some",
    ]
)
_WORD = re.compile(r"[\w']+", re.UNICODE)


def query_terms(text: str) -> list[str]:
    """The content words of `text`, lower-cased, sorted, without stopwords."""
    words = [w.lower().strip("'") for w in _WORD.findall(text)]
    return sorted({w for w in words if w and w not in STOPWORDS and len(w) > 1})


@dataclass(frozen=True)
class LexicalHits:
    """Lexical candidates of one query, not yet filtered by who may see them.

    `scores[i]` is the summed idf of the query terms that turn `rowids[i]` contains;
    `total` is the idf mass of the query terms that occur in the store at all, so
    `scores / total` is the rarity-weighted share of the query a turn matches.
    """

    rowids: np.ndarray
    scores: np.ndarray
    total: float
    terms: tuple[str, ...]  # searched (their postings read)
    dropped: tuple[str, ...]  # too common to be evidence (df above the cutoff)


NO_HITS = LexicalHits(np.zeros(0, np.int64), np.zeros(0), 0.0, (), ())


class ScoringRows:
    """An in-memory copy of what retrieval scores per turn (id, owner, time, place,
    speaker), in columns: reading the ~400 candidates of a query out of SQL took ~2 ms at
    10^5 turns, a lookup here a tenth of that. Columns, not a dict of tuples: a million
    turns cost ~90 MB (mostly the ids), not ~350 MB. Not thread-safe: the store holds
    its lock around every call."""

    def __init__(self, rows: Sequence[Sequence[Any]]) -> None:
        self.n = 0
        self.rowids = np.zeros(64, np.int64)
        self.times = np.zeros(64, np.float64)
        self.codes = np.zeros((64, 3), np.int32)  # owner, place, speaker: into `names`
        self.ids = np.empty(64, object)
        self.names: list[str | None] = []
        self._code: dict[str | None, int] = {}
        self.add(rows)

    def _of(self, name: str | None) -> int:
        code = self._code.get(name)
        if code is None:
            code = self._code[name] = len(self.names)
            self.names.append(name)
        return code

    @property
    def last(self) -> int:
        return int(self.rowids[self.n - 1]) if self.n else 0

    def add(self, rows: Sequence[Sequence[Any]]) -> bool:
        """Append (rowid, id, owner, time, place, speaker) rows past `last`, in rowid
        order; False (nothing added) when they are not: the caller reloads instead."""
        if not rows:
            return True
        new = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        if (self.n and new[0] <= self.last) or np.any(np.diff(new) <= 0):
            return False
        start, need = self.n, self.n + len(rows)
        self.rowids = _room(self.rowids, start, need)
        self.times = _room(self.times, start, need)
        self.codes = _room(self.codes, start, need)
        self.ids = _room(self.ids, start, need)
        self.rowids[start:need] = new
        self.times[start:need] = [float(r[3]) for r in rows]
        self.codes[start:need] = [(self._of(r[2]), self._of(r[4]), self._of(r[5])) for r in rows]
        self.ids[start:need] = [r[1] for r in rows]
        self.n = need
        return True

    def remove(self, rowids: Sequence[int]) -> None:
        keep = ~np.isin(self.rowids[: self.n], np.asarray(rowids, np.int64))
        kept = int(keep.sum())
        for column in (self.rowids, self.times, self.codes, self.ids):
            column[:kept] = column[: self.n][keep]
        self.ids[kept : self.n] = None
        self.n = kept

    def get(self, wanted: np.ndarray) -> tuple[dict[int, ScoringRow], np.ndarray]:
        """The rows held of `wanted` rowids, and the rowids not held."""
        if self.n == 0 or len(wanted) == 0:
            return {}, wanted
        pos = np.clip(np.searchsorted(self.rowids[: self.n], wanted), 0, self.n - 1)
        found = self.rowids[pos] == wanted
        pos = pos[found]
        names = self.names
        out = {
            r: (i, names[o], t, names[p], names[s])
            for r, i, t, (o, p, s) in zip(
                wanted[found].tolist(),
                self.ids[pos].tolist(),
                self.times[pos].tolist(),
                self.codes[pos].tolist(),
                strict=True,
            )
        }
        return out, wanted[~found]


TURN_COLUMNS = (
    "rowid, id, session, speaker, person, time, place, x, y, yaw, text, transcript, "
    "interrupted, image_path, image_caption, audio_path, shared"
)
_INSERT_COLUMNS = TURN_COLUMNS.removeprefix("rowid, ") + ", owner"
_SCORING_COLUMNS = "rowid, id, owner, time, place, speaker"
_TURNS = TypeAdapter(list[MemoryTurn])

Params = Sequence[Any] | Mapping[str, Any]
# Runs one statement in the backend's connection: its rows ([] for a statement with none).
Run = Callable[[str, Params], list[Any]]


class SqlStore(ABC):
    """Turns, summaries, facts and vectors in SQL tables, with the visibility rule applied
    by every read that takes a `person`. Thread-safe: a backend's `_read` and `_write`
    give each call a connection it may use alone."""

    # -- the dialect: what a backend spells its own way ------------------------------------
    BACKEND: str
    # Reads one term's postings: the table, and a WHERE fragment with one `?` (the term).
    TERM_SOURCE: str
    TERM_MATCH: str
    # Two-argument minimum and maximum, and NULL-safe equality.
    LEAST: str
    GREATEST: str
    SAME: str
    # How long a read of the place names is reused (other writers may add places).
    PLACES_TTL = math.inf

    path: Path | str

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._n_turns = 0
        self._places: list[str] | None = None
        self._places_at = 0.0
        # Document frequency per query term, an estimate: cached, and dropped when the
        # store has grown or shrunk by a tenth since it was filled.
        self._df: dict[str, int] = {}
        self._df_n = 0
        # What retrieval scores per turn, in memory (`_scoring_cache`), and the value of
        # `_other_writes` it is up to date with.
        self._scoring: ScoringRows | None = None
        self._scoring_at: int | None = None

    @abstractmethod
    def _read(self) -> AbstractContextManager[Run]:
        """A connection to read with (autocommit)."""

    @abstractmethod
    def _write(self) -> AbstractContextManager[Run]:
        """A connection in one write transaction: committed on exit, rolled back on error."""

    def _term(self, term: str) -> str:
        """The parameter `TERM_MATCH` takes for one query term."""
        return term

    def _vec_in(self, vec: np.ndarray) -> Any:
        return np.asarray(vec, np.float32)

    def _vec_out(self, value: Any) -> np.ndarray:
        return np.asarray(value, np.float32)

    def _asker(self, person: str | None) -> str | None:
        """The `owner` value a query compares with: the asker's `person_key`."""
        return key_of(person)

    def _check(self, turn: MemoryTurn) -> None:
        """Refuse, before anything is written, a turn this backend cannot store as given."""
        check_time(turn.time)

    def _media(self, turn: MemoryTurn) -> tuple[str | None, str | None]:
        """(image, audio) paths as stored: by reference unless a backend keeps copies."""
        return turn.image_path, turn.audio_path

    def _media_abs(self, stored: str | None) -> str | None:
        return stored

    def _media_file(self, stored: str) -> Path | None:
        """The file a forgotten turn's stored media path names, if this store may delete it."""
        p = Path(stored)
        return p if p.is_file() else None

    def _extra_columns(self) -> dict[str, Any]:
        """Columns a backend adds to each turn it writes (the robot of a fleet)."""
        return {}

    def _index_turn(self, run: Run, rowid: int, turn: MemoryTurn) -> None:
        """Index a new turn's words where the dialect does not do it by itself."""
        return None

    def _unindex(self, run: Run, rowids: list[int]) -> None:
        """Remove forgotten turns from the word index where the dialect keeps its own."""
        return None

    def _forgotten(self, rows: list[Any]) -> None:
        """After a person's rows are committed away: what the backend still holds of them."""
        return None

    def _in(self, column: str, ids: Sequence[int]) -> Iterator[tuple[str, list[Any]]]:
        """`column IN ids` as WHERE fragments with their parameters, in bounded chunks."""
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            yield f"{column} IN ({','.join('?' * len(chunk))})", chunk

    # -- state -----------------------------------------------------------------------------

    @property
    def n_turns(self) -> int:
        return self._n_turns

    def _rows(self, sql: str, params: Params = ()) -> list[Any]:
        with self._read() as run:
            return run(sql, params)

    def _visible(self, person: str | None) -> tuple[str, list[Any]]:
        if person is None:
            return visible_where(None), []
        return visible_where("?"), [self._asker(person)]

    def _row_to_turn(self, r: Sequence[Any]) -> StoredTurn:
        return self._rows_to_turns([r])[0]

    def _rows_to_turns(self, rows: Sequence[Sequence[Any]]) -> list[StoredTurn]:
        """Rows of `TURN_COLUMNS` as turns, validated in one call (a call per row and per
        pose cost twice as much: evidence is read 40 rows at a time)."""
        fields = []
        for r in rows:
            (_, id_, session, speaker, person, time, place, x, y, yaw, text) = r[:11]
            (transcript, interrupted, image_path, image_caption, audio_path, shared) = r[11:17]
            pose = {"x": x, "y": y, "yaw": yaw or 0.0} if x is not None and y is not None else None
            fields.append(
                {
                    "id": id_,
                    "session": session,
                    "speaker": speaker,
                    "person": person,
                    "time": time,
                    "place": place,
                    "text": text,
                    "transcript": transcript,
                    "interrupted": bool(interrupted),
                    "image_path": self._media_abs(image_path),
                    "image_caption": image_caption,
                    "audio_path": self._media_abs(audio_path),
                    "pose": pose,
                    "shared": bool(shared),
                }
            )
        turns = _TURNS.validate_python(fields)
        return [StoredTurn(rowid=int(r[0]), turn=t) for r, t in zip(rows, turns, strict=True)]

    # -- writes ----------------------------------------------------------------------------

    def add_turns(
        self, turns: Sequence[MemoryTurn], vectors: np.ndarray | None, model: str
    ) -> list[int]:
        """Insert turns (and their vectors) in one transaction: all or nothing."""
        rowids: list[int] = []
        with self._write() as run:
            for i, turn in enumerate(turns):
                rowids.append(self._insert(run, turn))
                if vectors is not None:
                    run(
                        "INSERT INTO vectors (turn, model, vec) VALUES (?, ?, ?)",
                        (rowids[-1], model, self._vec_in(vectors[i])),
                    )
        with self._lock:
            self._n_turns += len(rowids)
            if self._scoring is not None and not self._scoring.add(
                [
                    (r, t.id, key_of(t.person), t.time, t.place, t.speaker)
                    for r, t in zip(rowids, turns, strict=True)
                ]
            ):
                self._scoring = None  # rowids given out of order (an import): read again
            places = self._places
            if places is not None and any(t.place not in (None, *places) for t in turns):
                self._places = None
        return rowids

    def _insert(self, run: Run, turn: MemoryTurn) -> int:
        self._check(turn)
        # Before any file is copied: a refused duplicate must not overwrite the media of
        # the turn that holds the id.
        if run("SELECT 1 FROM turns WHERE id = ?", (turn.id,)):
            raise DuplicateTurnError(f"turn id {turn.id!r} is already in the store")
        image_path, audio_path = self._media(turn)
        if turn.session is not None:
            run(
                "INSERT INTO sessions (id, started, ended) VALUES (?, ?, ?) "
                f"ON CONFLICT (id) DO UPDATE SET "
                f"started = {self.LEAST}(sessions.started, excluded.started), "
                f"ended = {self.GREATEST}(sessions.ended, excluded.ended)",
                (turn.session, turn.time, turn.time),
            )
        pose = turn.pose
        extra = self._extra_columns()
        values = [
            turn.id,
            turn.session,
            turn.speaker,
            turn.person,
            turn.time,
            turn.place,
            pose.x if pose else None,
            pose.y if pose else None,
            pose.yaw if pose else None,
            turn.text,
            turn.transcript,
            turn.interrupted,
            image_path,
            turn.image_caption,
            audio_path,
            turn.shared,
            key_of(turn.person),
            *extra.values(),
        ]
        columns = ", ".join([_INSERT_COLUMNS, *extra])
        rowid = int(
            run(
                f"INSERT INTO turns ({columns}) VALUES ({', '.join('?' * len(values))}) "
                "RETURNING rowid",
                values,
            )[0][0]
        )
        self._index_turn(run, rowid, turn)
        return rowid

    def add_vectors(self, rowids: Sequence[int], vectors: np.ndarray, model: str) -> None:
        with self._write() as run:
            for r, v in zip(rowids, vectors, strict=True):
                run(
                    "INSERT INTO vectors (turn, model, vec) VALUES (?, ?, ?) ON CONFLICT (turn) "
                    "DO UPDATE SET model = excluded.model, vec = excluded.vec",
                    (int(r), model, self._vec_in(v)),
                )

    def add_summary(
        self, person: str | None, shared: bool, text: str, last_turn: int, time: float
    ) -> None:
        with self._write() as run:
            run(
                "INSERT INTO summaries (person, owner, shared, text, last_turn, time) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (person, key_of(person), shared, text, last_turn, time),
            )

    def add_fact(self, person: str | None, text: str, source_turn: str | None, time: float) -> None:
        with self._write() as run:
            run(
                "INSERT INTO facts (person, owner, text, source_turn, time) VALUES (?, ?, ?, ?, ?)",
                (person, key_of(person), text, source_turn, time),
            )

    def forget_person(self, person: str) -> tuple[int, list[int]]:
        """Delete every turn, vector, word index entry, session, summary, fact and media
        file of `person` in one transaction, whoever wrote them.

        Returns the number of turns removed and their rowids (for the vector index).
        `person` is compared by `person_key`: "alice" forgets Alice. Files go after the
        commit: a crash in between leaves orphan files, never rows naming missing files;
        a file another turn still names is kept.
        """
        key = self._asker(person)
        with self._write() as run:
            rows = run(
                "SELECT rowid, image_path, audio_path, id, session FROM turns WHERE owner = ?",
                (key,),
            )
            rowids = [int(r[0]) for r in rows]
            self._unindex(run, rowids)
            run(
                "DELETE FROM vectors WHERE turn IN (SELECT rowid FROM turns WHERE owner = ?)",
                (key,),
            )
            run("DELETE FROM turns WHERE owner = ?", (key,))
            # Their sessions, once no one else's turn is in them (ids may name them).
            for session in sorted({r[4] for r in rows if r[4] is not None}):
                run(
                    "DELETE FROM sessions WHERE id = ? AND NOT EXISTS "
                    "(SELECT 1 FROM turns WHERE turns.session = sessions.id)",
                    (session,),
                )
            run("DELETE FROM summaries WHERE owner = ?", (key,))
            run("DELETE FROM facts WHERE owner = ?", (key,))
            still_used = {
                str(p)
                for (p,) in run(
                    "SELECT image_path FROM turns WHERE image_path IS NOT NULL "
                    "UNION SELECT audio_path FROM turns WHERE audio_path IS NOT NULL",
                    (),
                )
            } if rows else set()  # fmt: skip
        with self._lock:
            self._places = None
            self._n_turns -= len(rowids)
            if self._scoring is not None:
                self._scoring.remove(rowids)
        self._forgotten(rows)
        for _, image, audio, _, _ in rows:
            for stored in (image, audio):
                if stored and stored not in still_used and (p := self._media_file(stored)):
                    p.unlink(missing_ok=True)
        return len(rowids), rowids

    # -- reads -----------------------------------------------------------------------------

    def get_turn(self, turn_id: str) -> StoredTurn | None:
        rows = self._rows(f"SELECT {TURN_COLUMNS} FROM turns WHERE id = ?", (turn_id,))
        return self._row_to_turn(rows[0]) if rows else None

    def turns_by_rowid(self, rowids: Iterable[int]) -> dict[int, StoredTurn]:
        out: dict[int, StoredTurn] = {}
        with self._read() as run:
            for where, params in self._in("rowid", list(rowids)):
                rows = run(f"SELECT {TURN_COLUMNS} FROM turns WHERE {where}", params)
                out.update((st.rowid, st) for st in self._rows_to_turns(rows))
        return out

    def recent_turns(
        self,
        person: str | None,
        limit: int,
        until: float | None = None,
        before: tuple[float, int] | None = None,
    ) -> list[StoredTurn]:
        """The latest `limit` turns visible to `person`, newest first.

        `before` is a (time, rowid) keyset cursor for paging further back.
        """
        where, params = self._visible(person)
        if until is not None:
            where += " AND time <= ?"
            params.append(until)
        if before is not None:
            where += " AND (time, rowid) < (?, ?)"
            params.extend(before)
        rows = self._rows(
            f"SELECT {TURN_COLUMNS} FROM turns WHERE {where} "
            "ORDER BY time DESC, rowid DESC LIMIT ?",
            [*params, limit],
        )
        return self._rows_to_turns(rows)

    def iter_turns(self) -> Iterator[StoredTurn]:
        """Every turn, in time order (what an export writes)."""
        for r in self._rows(f"SELECT {TURN_COLUMNS} FROM turns ORDER BY time, rowid"):
            yield self._row_to_turn(r)

    def turns_after(self, person: str | None, rowid: int, limit: int) -> list[StoredTurn]:
        """Turns owned by exactly `person` (None: unowned) after `rowid`, oldest first."""
        # `owner = ?` / `IS NULL` rather than NULL-safe equality: only they use the index.
        owner, params = (
            ("owner IS NULL", []) if person is None else ("owner = ?", [self._asker(person)])
        )
        rows = self._rows(
            f"SELECT {TURN_COLUMNS} FROM turns WHERE {owner} AND rowid > ? ORDER BY rowid LIMIT ?",
            [*params, rowid, limit],
        )
        return self._rows_to_turns(rows)

    def turns_without_vectors(self, model: str) -> list[StoredTurn]:
        rows = self._rows(
            f"SELECT {TURN_COLUMNS} FROM turns WHERE NOT EXISTS "
            "(SELECT 1 FROM vectors WHERE vectors.turn = turns.rowid AND vectors.model = ?) "
            "ORDER BY rowid",
            (model,),
        )
        return self._rows_to_turns(rows)

    def document_frequency(self, term: str, cap: int) -> int:
        """How many turns contain `term` (as the dialect's word index stems it), <= `cap`."""
        with self._lock:
            n = self.n_turns
            if n > 1.1 * self._df_n or n < self._df_n:
                self._df.clear()
                self._df_n = n
            if term not in self._df:
                r = self._rows(
                    f"SELECT count(*) FROM (SELECT 1 FROM {self.TERM_SOURCE} "
                    f"WHERE {self.TERM_MATCH} LIMIT ?) s",
                    (self._term(term), cap),
                )
                self._df[term] = int(r[0][0])
            return self._df[term]

    def lexical(self, query: str, postings: int = 1500, max_df: float = 0.2) -> LexicalHits:
        """Lexical candidates: turns sharing rare query terms, scored by summed idf.

        Not bm25 over every match: ranking all turns a common word matches cost ~30 ms
        at 10^5 turns. Instead terms are read rarest first, each as a plain rowid list
        (no ranking, no join), until `postings` rowids have been read; a term that
        would overflow the budget contributes only its most recent matches, and terms in
        more than `max_df` of all turns are dropped. Turn texts are one utterance, so
        term frequency and length normalisation add little over idf. Visibility is the
        caller's job (the vector index's partitions answer it for free).
        """
        terms = query_terms(query)
        n_turns = self.n_turns
        if not terms or n_turns == 0:
            return NO_HITS
        n = max(1, n_turns)
        cutoff = max(1, int(max_df * n))
        df = {t: self.document_frequency(t, cutoff + 1) for t in terms}
        present = [t for t in terms if df[t] > 0]
        idf = {t: math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in present}
        dropped = tuple(t for t in present if df[t] > cutoff)
        kept = sorted((t for t in present if df[t] <= cutoff), key=lambda t: (df[t], t))
        total = sum(idf[t] for t in kept)
        rows: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        searched: list[str] = []
        left = postings
        with self._read() as run:
            for t in kept:
                if left <= 0:
                    break
                found = run(
                    f"SELECT rowid FROM {self.TERM_SOURCE} WHERE {self.TERM_MATCH} "
                    "ORDER BY rowid DESC LIMIT ?",
                    (self._term(t), left),
                )
                ids = np.fromiter((r[0] for r in found), np.int64, len(found))
                rows.append(ids)
                weights.append(np.full(len(ids), idf[t]))
                searched.append(t)
                left -= len(ids)
        if not rows or sum(len(r) for r in rows) == 0:
            return LexicalHits(NO_HITS.rowids, NO_HITS.scores, total, tuple(searched), dropped)
        unique, inverse = np.unique(np.concatenate(rows), return_inverse=True)
        scores = np.bincount(inverse, np.concatenate(weights))
        return LexicalHits(unique, scores, total, tuple(searched), dropped)

    def rowids_where(self, place: str | None, since: float | None, until: float | None
                     ) -> list[int]:  # fmt: skip
        """Rowids passing the place/time filters (for filtered retrieval)."""
        clauses = ["true"]
        params: list[Any] = []
        for clause, value in (("place = ?", place), ("time >= ?", since), ("time <= ?", until)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        rows = self._rows(f"SELECT rowid FROM turns WHERE {' AND '.join(clauses)}", params)
        return [int(r[0]) for r in rows]

    def scoring_rows(self, rowids: Iterable[int]) -> dict[int, ScoringRow]:
        """(id, owner key, time, place, speaker) per rowid, in rowid order: what retrieval
        scores, no text. From the in-memory copy where the backend keeps one (see
        `_other_writes`); a rowid it does not hold is read from SQL, so a row committed a
        moment ago is never missed."""
        wanted = np.unique(np.fromiter(rowids, np.int64))
        with self._lock:
            cache = self._scoring_cache()
            out, missing = cache.get(wanted) if cache is not None else ({}, wanted)
        if len(missing):
            with self._read() as run:
                for where, params in self._in("rowid", missing.tolist()):
                    for r in run(f"SELECT {_SCORING_COLUMNS} FROM turns WHERE {where}", params):
                        out[int(r[0])] = (r[1], r[2], float(r[3]), r[4], r[5])
            if cache is not None:
                out = dict(sorted(out.items()))
        return out

    def _other_writes(self) -> int | None:
        """A number that moves whenever another connection commits, read in one cheap call
        (SQLite's `data_version`); None where there is none, and then scoring rows are read
        from SQL each time: a fleet's database changes with every robot's turn, and checking
        would cost the read it saves."""
        return None

    def _scoring_cache(self) -> ScoringRows | None:
        """The in-memory scoring rows, brought up to date with other connections' commits:
        their new rows appended, reloaded whole when rows went (another process forgot
        someone). The first call reads every row (~0.1 s at 10^5 turns). Under the lock."""
        version = self._other_writes()
        if version is None:
            return None
        cache = self._scoring
        if cache is not None and version == self._scoring_at:
            return cache
        with self._read() as run:
            if cache is not None:
                new = run(
                    f"SELECT {_SCORING_COLUMNS} FROM turns WHERE rowid > ? ORDER BY rowid",
                    (cache.last,),
                )
                count = int(run("SELECT count(*) FROM turns", ())[0][0])
                if not cache.add(new) or cache.n != count:
                    cache = None
            if cache is None:
                cache = ScoringRows(run(f"SELECT {_SCORING_COLUMNS} FROM turns ORDER BY rowid", ()))
        self._scoring, self._scoring_at = cache, version
        return cache

    _VECTORS = (
        "SELECT v.turn, t.owner, t.shared, v.vec FROM vectors v "
        "JOIN turns t ON t.rowid = v.turn WHERE v.model = ?"
    )

    def vectors(self, model: str) -> Iterator[tuple[int, Partition, np.ndarray]]:
        """(rowid, partition, vector) of every turn embedded with `model`."""
        rows = self._rows(f"{self._VECTORS} ORDER BY v.turn", (model,))
        for rowid, owner, shared, vec in rows:
            yield int(rowid), partition(owner, bool(shared)), self._vec_out(vec)

    def vector_rowids(self, model: str) -> Iterator[tuple[int, Partition]]:
        """(rowid, partition) of every turn embedded with `model`."""
        rows = self._rows(
            "SELECT v.turn, t.owner, t.shared FROM vectors v "
            "JOIN turns t ON t.rowid = v.turn WHERE v.model = ?",
            (model,),
        )
        for rowid, owner, shared in rows:
            yield int(rowid), partition(owner, bool(shared))

    def vectors_of(
        self, rowids: Sequence[int], model: str
    ) -> list[tuple[int, Partition, np.ndarray]]:
        """(rowid, partition, vector) of the given turns that have a `model` vector."""
        out: list[tuple[int, Partition, np.ndarray]] = []
        with self._read() as run:
            for where, params in self._in("v.turn", rowids):
                for rowid, owner, shared, vec in run(
                    f"{self._VECTORS} AND {where}", [model, *params]
                ):
                    out.append((int(rowid), partition(owner, bool(shared)), self._vec_out(vec)))
        return out

    def places(self) -> list[str]:
        # Cached: retrieval asks on every query and a DISTINCT scan grows with the store.
        with self._lock:
            now = _time.monotonic()
            if self._places is None or now - self._places_at > self.PLACES_TTL:
                rows = self._rows("SELECT DISTINCT place FROM turns WHERE place IS NOT NULL")
                self._places = sorted(str(r[0]) for r in rows)
                self._places_at = now
            return self._places

    def people(self) -> list[str | None]:
        """One name per person, however its case varies: the first spelling stored (by
        rowid, not by the collation, which differs between databases)."""
        rows = self._rows(
            "SELECT person FROM turns WHERE rowid IN (SELECT min(rowid) FROM turns GROUP BY owner)"
            " ORDER BY rowid"
        )
        return [r[0] for r in rows]

    def people_after(self, rowid: int) -> tuple[set[str], int]:
        """People with turns after `rowid`, and the newest rowid (where to ask on from)."""
        with self._read() as run:
            rows = run(
                "SELECT person FROM turns WHERE rowid IN (SELECT min(rowid) FROM turns "
                "WHERE rowid > ? AND person IS NOT NULL GROUP BY owner)",
                (rowid,),
            )
            last = run("SELECT max(rowid) FROM turns", ())[0][0]
        return {str(r[0]) for r in rows}, int(last or 0)

    def latest_summary(self, person: str | None) -> Summary | None:
        """The newest summary `person` may see, their own before anyone else's."""
        where, params = self._visible(person)
        rows = self._rows(
            f"SELECT person, shared, text, last_turn, time FROM summaries WHERE {where} "
            f"ORDER BY (owner {self.SAME} ?) DESC, id DESC LIMIT 1",
            [*params, self._asker(person)],
        )
        if not rows:
            return None
        r = rows[0]
        return Summary(person=r[0], shared=bool(r[1]), text=r[2], last_turn=int(r[3]), time=r[4])

    def summary_watermark(self, person: str | None) -> int:
        """Rowid of the last turn that `person`'s rolling summary covers (0 if none)."""
        rows = self._rows(
            f"SELECT max(last_turn) FROM summaries WHERE owner {self.SAME} ?",
            (self._asker(person),),
        )
        return int(rows[0][0] or 0)

    def session_dates(self) -> dict[str, float]:
        """When each session started (its date)."""
        return {str(r[0]): float(r[1]) for r in self._rows("SELECT id, started FROM sessions")}

    def stats(self) -> dict[str, object]:
        """Counts, people, places and schema version (what `omni-agent memory stats` shows)."""
        with self._read() as run:

            def one(sql: str) -> Any:
                return run(sql, ())[0][0]

            def per(column: str) -> dict[str, int]:
                rows = run(
                    f"SELECT coalesce({column}, ''), count(*) FROM turns GROUP BY {column} "
                    "ORDER BY 1",
                    (),
                )
                return {name or "(none)": int(n) for name, n in rows}

            out: dict[str, object] = {
                "path": str(self.path),
                "backend": self.BACKEND,
                "schema_version": one("SELECT version FROM schema_version"),
                "turns": one("SELECT count(*) FROM turns"),
                "sessions": one("SELECT count(*) FROM sessions"),
                "vectors": one("SELECT count(*) FROM vectors"),
                "summaries": one("SELECT count(*) FROM summaries"),
                "facts": one("SELECT count(*) FROM facts"),
                "images": one("SELECT count(*) FROM turns WHERE image_path IS NOT NULL"),
                "first_time": one("SELECT min(time) FROM turns"),
                "last_time": one("SELECT max(time) FROM turns"),
                "people": per("person"),
            }
            out.update({k: per(c) for k, c in self._per_column_stats().items()})
        out["places"] = self.places()
        return out

    def _per_column_stats(self) -> dict[str, str]:
        """Stats counted per value of a backend's own columns: {stat name: column}."""
        return {}

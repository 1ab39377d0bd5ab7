"""SQLite store: one file per robot, WAL mode, versioned schema, FTS5 for lexical search.

Why SQLite: one file a robot can copy, crash-safe commits, concurrent readers under WAL,
and FTS5 built in. Media files (keyframes, audio) live in `<db stem>.media/` next to the
database so that forgetting a person can remove their files too.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from memory.names import person_key
from memory.types import MemoryTurn, Pose
from memory.vectors import Partition


def owner_key(person: str | None, shared: bool) -> Partition:
    return None if shared or person is None else person_key(person)


def partition(owner: str | None, shared: bool) -> Partition:
    """The partition of a stored row, from its `owner` column and shared flag."""
    return None if shared or owner is None else owner


def visible_where(asker: str | None, table: str = "", shared: bool = True) -> str:
    """The isolation rule, in one place for every backend: a person sees their own rows
    (`owner` is their `person_key`), shared rows and rows with no person. `asker` is the
    placeholder of the asker's key in the dialect (`?`, `%(person)s`), None for nobody;
    `shared=False` for a table without the flag (facts)."""
    t = f"{table}." if table else ""
    parts = ([f"{t}owner = {asker}"] if asker is not None else []) + (
        [f"{t}shared"] if shared else []
    )
    return "(" + " OR ".join([*parts, f"{t}person IS NULL"]) + ")"


def key_of(person: str | None) -> str | None:
    """The `owner` column value of a person (None: no person)."""
    return None if person is None else person_key(person)


# ---------------------------------------------------------------------------------------
# Migrations: MIGRATIONS[i] takes a database from version i to version i + 1. Never edit a
# released migration; append a new one.


def _run(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it commits first, which would break the migration's transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _v1_initial(db: sqlite3.Connection) -> None:
    _run(
        db,
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            started REAL NOT NULL,
            ended REAL NOT NULL
        );
        CREATE TABLE turns (
            rowid INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            session TEXT REFERENCES sessions(id),
            speaker TEXT NOT NULL CHECK (speaker IN ('user', 'robot')),
            person TEXT,
            time REAL NOT NULL,
            place TEXT,
            x REAL, y REAL, yaw REAL,
            text TEXT NOT NULL,
            transcript TEXT,
            interrupted INTEGER NOT NULL DEFAULT 0,
            image_path TEXT,
            image_caption TEXT,
            audio_path TEXT
        );
        CREATE INDEX turns_person_time ON turns(person, time);
        CREATE INDEX turns_time ON turns(time);
        CREATE VIRTUAL TABLE turns_fts USING fts5(
            text, caption, place, tokenize = 'porter unicode61'
        );
        CREATE TABLE summaries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            person TEXT,
            text TEXT NOT NULL,
            last_turn INTEGER NOT NULL,
            time REAL NOT NULL
        );
        """,
    )


def _v2_sharing_vectors_facts(db: sqlite3.Connection) -> None:
    # v2: turns can be shared with everyone, embeddings live next to the rows they describe
    # (same transaction, so a crash never leaves a turn half-indexed), facts are kept.
    _run(
        db,
        """
        ALTER TABLE turns ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE summaries ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE vectors (
            turn INTEGER PRIMARY KEY REFERENCES turns(rowid) ON DELETE CASCADE,
            model TEXT NOT NULL,
            vec BLOB NOT NULL
        );
        CREATE TABLE facts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            person TEXT,
            text TEXT NOT NULL,
            source_turn TEXT,
            time REAL NOT NULL
        );
        CREATE INDEX facts_person ON facts(person);
        CREATE INDEX summaries_person ON summaries(person, id);
        """,
    )


def _v3_turns_by_owner(db: sqlite3.Connection) -> None:
    # v3: an owner's turns in rowid order (the index carries the rowid), so "the turns after
    # this one" reads a range instead of sorting every turn of that person (0.3 s at 10^6).
    _run(db, "CREATE INDEX turns_person_rowid ON turns(person);")


def _v4_owner_key(db: sqlite3.Connection) -> None:
    # v4: rows carry their person's comparison key (`names.person_key`), and every query
    # compares that, so "alice" and "Alice" are one person (forgetting one forgets both).
    _run(
        db,
        """
        ALTER TABLE turns ADD COLUMN owner TEXT;
        ALTER TABLE summaries ADD COLUMN owner TEXT;
        ALTER TABLE facts ADD COLUMN owner TEXT;
        CREATE INDEX turns_owner ON turns(owner);
        CREATE INDEX summaries_owner ON summaries(owner, id);
        CREATE INDEX facts_owner ON facts(owner);
        """,
    )
    for table in ("turns", "summaries", "facts"):
        names = [r[0] for r in db.execute(f"SELECT DISTINCT person FROM {table}")]
        db.executemany(
            f"UPDATE {table} SET owner = ? WHERE person = ?",
            [(person_key(n), n) for n in names if n is not None],
        )


Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = [
    _v1_initial,
    _v2_sharing_vectors_facts,
    _v3_turns_by_owner,
    _v4_owner_key,
]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    """A memory database that cannot be used: the message is one line saying what to do."""


def schema_version(db: sqlite3.Connection) -> int:
    row = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        return 0
    row = db.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(db: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing migrations, each in its own transaction with its version bump.

    The version is read inside the write transaction: two processes opening a new file
    at once then migrate one after the other, and the second finds nothing left to do.
    """
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = schema_version(db)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"memory database has schema v{version}, newer than this code "
                    f"(v{SCHEMA_VERSION}): upgrade omni-agent"
                )
            if version >= target:
                db.execute("COMMIT")
                return version
            MIGRATIONS[version](db)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version VALUES (?)", (version + 1,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


# ---------------------------------------------------------------------------------------


class DuplicateTurnError(ValueError):
    pass


# Times a turn may carry: what a UTC calendar date can show (years 1 to 9999). Anything
# else (NaN, infinity, year 10000) would be stored and then break every rendering.
TIME_MIN = datetime(1, 1, 2, tzinfo=timezone.utc).timestamp()
TIME_MAX = datetime(9999, 12, 30, tzinfo=timezone.utc).timestamp()


def check_time(value: float) -> float:
    """`value` if it is a finite unix time within years 1..9999, else ValueError."""
    if not math.isfinite(value) or not TIME_MIN <= value <= TIME_MAX:
        raise ValueError(f"time {value!r} is not a date between the years 1 and 9999")
    return value


def media_folder(turn_id: str) -> str:
    """The media folder of a turn: readable, and distinct for distinct ids (`x/1`, `x_1`)."""
    readable = re.sub(r"[^\w.-]", "_", turn_id)[:40].strip(".") or "turn"
    digest = hashlib.sha256(turn_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{readable}-{digest}"


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


def _phrase(term: str) -> str:
    # Quoted so user text can never inject FTS5 syntax.
    return '"' + term.replace('"', "") + '"'


def fts_query(text: str) -> str | None:
    """An FTS5 OR-query of the content words of `text` (None when there are none)."""
    terms = query_terms(text)
    return " OR ".join(_phrase(t) for t in terms) if terms else None


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


_NO_HITS = LexicalHits(np.zeros(0, np.int64), np.zeros(0), 0.0, (), ())


def unusable(path: Path, exc: sqlite3.DatabaseError) -> str:
    what = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in what:
        return f"cannot open memory database {path}: {what} (is its folder writable?)"
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in what:
        return f"memory database {path} is read-only: {what}"
    return (
        f"memory database {path} is not a usable memory file ({what}): "
        "restore it from a backup or move it away to start a new one"
    )


_TURN_COLUMNS = (
    "rowid, id, session, speaker, person, time, place, x, y, yaw, text, transcript, "
    "interrupted, image_path, image_caption, audio_path, shared"
)
_INSERT_COLUMNS = _TURN_COLUMNS.removeprefix("rowid, ") + ", owner"


class Store:
    """All SQL of the memory package. Thread-safe: one connection behind a lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.media_dir = self.path.with_name(self.path.stem + ".media")
        self._lock = threading.RLock()
        self._places: list[str] | None = None
        # Document frequency per query term, an estimate: cached, and dropped when the
        # store has grown or shrunk by a tenth since it was filled.
        self._df: dict[str, int] = {}
        self._df_n = 0
        if self.path.is_dir():
            raise StoreError(f"memory database {self.path} is a directory; give a file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create folder {self.path.parent} for memory database {self.path}: "
                f"{exc.strerror}"
            ) from None
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is
            # exactly what the code says it is.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open memory database {self.path}: {exc}") from None
        try:
            self._open()
        except StoreError:
            self._db.close()
            raise
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(unusable(self.path, exc)) from exc

    def _open(self) -> None:
        # First, so that a second process opening a new file waits instead of failing.
        self._db.execute("PRAGMA busy_timeout=5000")
        self._wal_mode()
        # FULL: a commit is on disk when add_turn returns (the caller's durability promise);
        # WAL keeps that to one fsync per commit.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten, so forgetting a person leaves no words in free pages.
        self._db.execute("PRAGMA secure_delete=ON")
        migrate(self._db)
        self._n_turns = int(self._db.execute("SELECT count(*) FROM turns").fetchone()[0])
        self._data_version = self._read_data_version()

    def _wal_mode(self) -> None:
        # Switching a new file to WAL takes an exclusive lock for which SQLite does not
        # call the busy handler: when several processes open a new file at once, the
        # losers retry for as long as busy_timeout would have waited.
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _read_data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def changed_elsewhere(self) -> bool:
        """True (once per change) when another connection has committed since last asked.

        SQLite's `data_version` moves only for other connections' commits, so this costs
        one pragma per query and catches every other process's write. The caches of this
        store (turn count, places, document frequencies) are refreshed on the way.
        """
        with self._lock:
            version = self._read_data_version()
            if version == self._data_version:
                return False
            self._data_version = version
            self._n_turns = int(self._db.execute("SELECT count(*) FROM turns").fetchone()[0])
            self._places = None
            self._df.clear()
            self._df_n = self._n_turns
            return True

    @property
    def n_turns(self) -> int:
        return self._n_turns

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writes ---------------------------------------------------------------------------

    def add_turns(
        self,
        turns: Sequence[MemoryTurn],
        vectors: np.ndarray | None,
        model: str,
    ) -> list[int]:
        """Insert turns (and their vectors) in one transaction: all or nothing."""
        rowids: list[int] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for i, turn in enumerate(turns):
                    rowids.append(self._insert(turn))
                    if vectors is not None:
                        self._db.execute(
                            "INSERT INTO vectors (turn, model, vec) VALUES (?, ?, ?)",
                            (rowids[-1], model, np.asarray(vectors[i], np.float32).tobytes()),
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._n_turns += len(rowids)
        return rowids

    def _insert(self, turn: MemoryTurn) -> int:
        check_time(turn.time)
        # Before any file is copied: a refused duplicate must not overwrite the media of
        # the turn that holds the id.
        if self._db.execute("SELECT 1 FROM turns WHERE id = ?", (turn.id,)).fetchone():
            raise DuplicateTurnError(f"turn id {turn.id!r} is already in the store")
        image_path = self._keep_media(turn.id, turn.image_path)
        audio_path = self._keep_media(turn.id, turn.audio_path, avoid=image_path)
        if turn.session is not None:
            self._db.execute(
                "INSERT INTO sessions (id, started, ended) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET started = min(started, excluded.started), "
                "ended = max(ended, excluded.ended)",
                (turn.session, turn.time, turn.time),
            )
        pose = turn.pose
        try:
            cur = self._db.execute(
                f"INSERT INTO turns ({_INSERT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
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
                    int(turn.interrupted),
                    image_path,
                    turn.image_caption,
                    audio_path,
                    int(turn.shared),
                    key_of(turn.person),
                ),
            )
        except sqlite3.IntegrityError as e:
            if "turns.id" in str(e):
                raise DuplicateTurnError(f"turn id {turn.id!r} is already in the store") from e
            raise
        rowid = int(cur.lastrowid or 0)
        if turn.place is not None and self._places is not None and turn.place not in self._places:
            self._places = None
        self._db.execute(
            "INSERT INTO turns_fts (rowid, text, caption, place) VALUES (?, ?, ?, ?)",
            (rowid, turn.text, turn.image_caption or "", turn.place or ""),
        )
        return rowid

    def _keep_media(self, turn_id: str, path: str | None, avoid: str | None = None) -> str | None:
        """Copy a media file into the media folder so the store owns (and can delete) it.

        Each turn has its own folder (`media_folder`: distinct ids never share one). A path
        that does not exist is kept as given: imported corpora may reference files that
        live elsewhere.
        """
        if path is None:
            return None
        src = Path(path)
        if not src.is_file():
            return path
        media = self.media_dir.resolve()
        if src.resolve().is_relative_to(media):
            return str(src.resolve().relative_to(media))
        dest = media / media_folder(turn_id) / src.name
        if avoid is not None and str(dest.relative_to(media)) == avoid:
            dest = dest.with_name(f"audio-{src.name}")  # image and audio with one name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        return str(dest.relative_to(media))

    def _media_abs(self, stored: str | None) -> str | None:
        if stored is None:
            return None
        p = Path(stored)
        return str(p if p.is_absolute() else self.media_dir / p)

    def add_summary(
        self, person: str | None, shared: bool, text: str, last_turn: int, time: float
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO summaries (person, owner, shared, text, last_turn, time) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (person, key_of(person), int(shared), text, last_turn, time),
            )

    def add_fact(self, person: str | None, text: str, source_turn: str | None, time: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO facts (person, owner, text, source_turn, time) VALUES (?, ?, ?, ?, ?)",
                (person, key_of(person), text, source_turn, time),
            )

    def forget_person(self, person: str) -> tuple[int, list[int]]:
        """Delete every turn, vector, FTS row, session, summary, fact and media file of
        `person`, and leave none of their words in the file.

        Returns the number of turns removed and their rowids (for the vector index).
        `person` is compared by `person_key`: "alice" forgets Alice.
        """
        key = person_key(person)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT rowid, image_path, audio_path, id, session FROM turns WHERE owner = ?",
                    (key,),
                ).fetchall()
                rowids = [int(r[0]) for r in rows]
                self._db.executemany(
                    "DELETE FROM turns_fts WHERE rowid = ?", [(r,) for r in rowids]
                )
                self._db.execute(
                    "DELETE FROM vectors WHERE turn IN (SELECT rowid FROM turns WHERE owner = ?)",
                    (key,),
                )
                self._db.execute("DELETE FROM turns WHERE owner = ?", (key,))
                # Their sessions, once no one else's turn is in them (ids may name them).
                self._db.executemany(
                    "DELETE FROM sessions WHERE id = ? AND NOT EXISTS "
                    "(SELECT 1 FROM turns WHERE session = sessions.id)",
                    [(s,) for s in {r[4] for r in rows if r[4] is not None}],
                )
                self._db.execute("DELETE FROM summaries WHERE owner = ?", (key,))
                self._db.execute("DELETE FROM facts WHERE owner = ?", (key,))
                if rowids:
                    # FTS5 keeps deleted words in its index segments until they are merged:
                    # merge them all now, so the index holds no word of theirs.
                    self._db.execute("INSERT INTO turns_fts (turns_fts) VALUES ('optimize')")
                still_used = {
                    str(p)
                    for (p,) in self._db.execute(
                        "SELECT image_path FROM turns WHERE image_path IS NOT NULL "
                        "UNION SELECT audio_path FROM turns WHERE audio_path IS NOT NULL"
                    )
                } if rowids else set()  # fmt: skip
                self._db.execute("COMMIT")
                self._places = None
                self._n_turns -= len(rowids)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            # Old page images of the deleted rows stay in the WAL until a checkpoint.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # Files go after the commit: a crash in between leaves orphan files, never rows
        # pointing at missing files. A file another turn still names is kept (stores
        # written before media folders were per id could share one).
        media = self.media_dir.resolve()
        for _, image, audio, turn_id, _ in rows:
            for stored in (image, audio):
                p = Path(self._media_abs(stored) or "")
                if (
                    stored
                    and stored not in still_used
                    and p.is_file()
                    and p.resolve().is_relative_to(media)
                ):
                    p.unlink()
            folder = media / media_folder(turn_id)
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):  # the folder of older stores, once empty
                (media / re.sub(r"[^\w.-]", "_", turn_id)).rmdir()
        return len(rowids), rowids

    # -- reads ----------------------------------------------------------------------------

    def _row_to_turn(self, r: tuple[Any, ...]) -> StoredTurn:
        (rowid, id_, session, speaker, person, time, place, x, y, yaw, text) = r[:11]
        (transcript, interrupted, image_path, image_caption, audio_path, shared) = r[11:]
        pose = Pose(x=x, y=y, yaw=yaw or 0.0) if x is not None and y is not None else None
        return StoredTurn(
            rowid=int(rowid),
            turn=MemoryTurn(
                id=id_,
                session=session,
                speaker=speaker,
                person=person,
                time=time,
                place=place,
                text=text,
                transcript=transcript,
                interrupted=bool(interrupted),
                image_path=self._media_abs(image_path),
                image_caption=image_caption,
                audio_path=self._media_abs(audio_path),
                pose=pose,
                shared=bool(shared),
            ),
        )

    @staticmethod
    def _visible(person: str | None, shared: bool = True) -> tuple[str, tuple[str, ...]]:
        if person is None:
            return visible_where(None, shared=shared), ()
        return visible_where("?", shared=shared), (person_key(person),)

    def get_turn(self, turn_id: str) -> StoredTurn | None:
        with self._lock:
            r = self._db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE id = ?", (turn_id,)
            ).fetchone()
        return self._row_to_turn(r) if r else None

    def turns_by_rowid(self, rowids: Iterable[int]) -> dict[int, StoredTurn]:
        ids = list(rowids)
        out: dict[int, StoredTurn] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for r in self._db.execute(
                    f"SELECT {_TURN_COLUMNS} FROM turns WHERE rowid IN ({marks})", chunk
                ):
                    st = self._row_to_turn(r)
                    out[st.rowid] = st
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
        where, args = self._visible(person)
        params: list[object] = list(args)
        if until is not None:
            where += " AND time <= ?"
            params.append(until)
        if before is not None:
            where += " AND (time < ? OR (time = ? AND rowid < ?))"
            params.extend([before[0], before[0], before[1]])
        params.append(limit)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE {where} "
                "ORDER BY time DESC, rowid DESC LIMIT ?",
                params,
            ).fetchall()
        return [self._row_to_turn(r) for r in rows]

    def iter_turns(self, person: str | None = None, everyone: bool = True) -> Iterator[StoredTurn]:
        """All turns in time order (`everyone`), or those visible to `person`."""
        where, args = ("1", ()) if everyone else self._visible(person)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE {where} ORDER BY time, rowid", args
            ).fetchall()
        for r in rows:
            yield self._row_to_turn(r)

    def document_frequency(self, term: str, cap: int) -> int:
        """How many turns contain `term` (as FTS5 stems it), counted up to `cap`."""
        with self._lock:
            n = self._n_turns
            if n > 1.1 * self._df_n or n < self._df_n:
                self._df.clear()
                self._df_n = n
            if term not in self._df:
                r = self._db.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM turns_fts WHERE turns_fts MATCH ? "
                    "LIMIT ?)",
                    (_phrase(term), cap),
                ).fetchone()
                self._df[term] = int(r[0])
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
        n = max(1, self._n_turns)
        if not terms or self._n_turns == 0:
            return _NO_HITS
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
        with self._lock:
            for t in kept:
                if left <= 0:
                    break
                found = self._db.execute(
                    "SELECT rowid FROM turns_fts WHERE turns_fts MATCH ? "
                    "ORDER BY rowid DESC LIMIT ?",
                    (_phrase(t), left),
                ).fetchall()
                ids = np.fromiter((r[0] for r in found), np.int64, len(found))
                rows.append(ids)
                weights.append(np.full(len(ids), idf[t]))
                searched.append(t)
                left -= len(ids)
        if not rows or sum(len(r) for r in rows) == 0:
            return LexicalHits(_NO_HITS.rowids, _NO_HITS.scores, total, tuple(searched), dropped)
        unique, inverse = np.unique(np.concatenate(rows), return_inverse=True)
        scores = np.bincount(inverse, np.concatenate(weights))
        return LexicalHits(unique, scores, total, tuple(searched), dropped)

    def rowids_where(
        self,
        place: str | None,
        since: float | None,
        until: float | None,
    ) -> list[int]:
        """Rowids passing the place/time filters (for filtered retrieval)."""
        clauses: list[str] = ["1"]
        params: list[float | str] = []
        if place is not None:
            clauses.append("place = ?")
            params.append(place)
        if since is not None:
            clauses.append("time >= ?")
            params.append(since)
        if until is not None:
            clauses.append("time <= ?")
            params.append(until)
        with self._lock:
            rows = self._db.execute(
                f"SELECT rowid FROM turns WHERE {' AND '.join(clauses)}", params
            ).fetchall()
        return [int(r[0]) for r in rows]

    def vectors(self, model: str) -> Iterator[tuple[int, Partition, np.ndarray]]:
        """(rowid, owner key, vector) of every embedded turn."""
        with self._lock:
            rows = self._db.execute(
                "SELECT v.turn, t.owner, t.shared, v.vec FROM vectors v "
                "JOIN turns t ON t.rowid = v.turn WHERE v.model = ? ORDER BY v.turn",
                (model,),
            ).fetchall()
        for rowid, owner, shared, blob in rows:
            yield int(rowid), partition(owner, bool(shared)), np.frombuffer(blob, np.float32)

    def vector_rowids(self, model: str) -> Iterator[tuple[int, Partition]]:
        """(rowid, owner key) of every turn embedded with `model`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT v.turn, t.owner, t.shared FROM vectors v "
                "JOIN turns t ON t.rowid = v.turn WHERE v.model = ?",
                (model,),
            ).fetchall()
        for rowid, owner, shared in rows:
            yield int(rowid), partition(owner, bool(shared))

    def vectors_of(
        self, rowids: Sequence[int], model: str
    ) -> list[tuple[int, Partition, np.ndarray]]:
        """(rowid, owner key, vector) of the given turns that have a `model` vector."""
        out: list[tuple[int, Partition, np.ndarray]] = []
        with self._lock:
            for start in range(0, len(rowids), 500):
                chunk = list(rowids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                for rowid, owner, shared, blob in self._db.execute(
                    "SELECT v.turn, t.owner, t.shared, v.vec FROM vectors v "
                    f"JOIN turns t ON t.rowid = v.turn WHERE v.model = ? AND v.turn IN ({marks})",
                    [model, *chunk],
                ):
                    key = partition(owner, bool(shared))
                    out.append((int(rowid), key, np.frombuffer(blob, np.float32)))
        return out

    def vector_index(self, dim: int, model: str) -> None:
        """None: `Memory` searches this store's vectors in process (memory/vectors.py)."""
        return None

    def turns_without_vectors(self, model: str) -> list[StoredTurn]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE rowid NOT IN "
                "(SELECT turn FROM vectors WHERE model = ?) ORDER BY rowid",
                (model,),
            ).fetchall()
        return [self._row_to_turn(r) for r in rows]

    def add_vectors(self, rowids: Sequence[int], vectors: np.ndarray, model: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors (turn, model, vec) VALUES (?, ?, ?)",
                    [
                        (r, model, np.asarray(v, np.float32).tobytes())
                        for r, v in zip(rowids, vectors, strict=True)
                    ],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def places(self) -> list[str]:
        # Cached: retrieval asks on every query and a DISTINCT scan grows with the store.
        with self._lock:
            if self._places is None:
                rows = self._db.execute(
                    "SELECT DISTINCT place FROM turns WHERE place IS NOT NULL"
                ).fetchall()
                self._places = sorted(str(r[0]) for r in rows)
            return self._places

    def people_after(self, rowid: int) -> tuple[set[str], int]:
        """People with turns after `rowid`, and the newest rowid (where to ask on from)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT min(person) FROM turns WHERE rowid > ? AND person IS NOT NULL "
                "GROUP BY owner",
                (rowid,),
            ).fetchall()
            last = self._db.execute("SELECT max(rowid) FROM turns").fetchone()[0]
        return {str(r[0]) for r in rows}, int(last or 0)

    def scoring_rows(
        self, rowids: Iterable[int]
    ) -> dict[int, tuple[str, str | None, float, str | None, str]]:
        """(id, owner key, time, place, speaker) per rowid: what retrieval scores, no text."""
        ids = list(rowids)
        out = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for r in self._db.execute(
                    "SELECT rowid, id, owner, time, place, speaker FROM turns "
                    f"WHERE rowid IN ({marks})",
                    chunk,
                ):
                    out[int(r[0])] = (r[1], r[2], float(r[3]), r[4], r[5])
        return out

    def latest_summary(self, person: str | None) -> Summary | None:
        where, args = self._visible(person)
        with self._lock:
            r = self._db.execute(
                f"SELECT person, shared, text, last_turn, time FROM summaries WHERE {where} "
                "ORDER BY (owner IS ?) DESC, id DESC LIMIT 1",
                (*args, key_of(person)),
            ).fetchone()
        if r is None:
            return None
        return Summary(person=r[0], shared=bool(r[1]), text=r[2], last_turn=int(r[3]), time=r[4])

    def summary_watermark(self, person: str | None) -> int:
        """Rowid of the last turn that `person`'s rolling summary covers (0 if none)."""
        with self._lock:
            r = self._db.execute(
                "SELECT max(last_turn) FROM summaries WHERE owner IS ?", (key_of(person),)
            ).fetchone()
        return int(r[0] or 0)

    def turns_after(self, person: str | None, rowid: int, limit: int) -> list[StoredTurn]:
        """Turns owned by exactly `person` (None: unowned) after `rowid`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE owner IS ? AND rowid > ? "
                "ORDER BY rowid LIMIT ?",
                (key_of(person), rowid, limit),
            ).fetchall()
        return [self._row_to_turn(r) for r in rows]

    def session_dates(self) -> dict[str, float]:
        """When each session started (its date)."""
        with self._lock:
            rows = self._db.execute("SELECT id, started FROM sessions").fetchall()
        return {str(r[0]): float(r[1]) for r in rows}

    def people(self) -> list[str | None]:
        with self._lock:
            # One name per person (the first spelling stored), however its case varies.
            rows = self._db.execute("SELECT min(person) FROM turns GROUP BY owner").fetchall()
        return [r[0] for r in rows]

    def facts(self, person: str | None) -> list[tuple[str, str | None, float]]:
        where, args = self._visible(person, shared=False)  # facts have no shared flag
        with self._lock:
            rows = self._db.execute(
                f"SELECT text, source_turn, time FROM facts WHERE {where} ORDER BY id", args
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def stats(self) -> dict[str, object]:
        with self._lock:

            def one(sql: str) -> object:
                return self._db.execute(sql).fetchone()[0]

            people = self._db.execute(
                "SELECT coalesce(person, ''), count(*) FROM turns GROUP BY person ORDER BY person"
            ).fetchall()
            return {
                "path": str(self.path),
                "schema_version": schema_version(self._db),
                "turns": one("SELECT count(*) FROM turns"),
                "sessions": one("SELECT count(*) FROM sessions"),
                "vectors": one("SELECT count(*) FROM vectors"),
                "summaries": one("SELECT count(*) FROM summaries"),
                "facts": one("SELECT count(*) FROM facts"),
                "images": one("SELECT count(*) FROM turns WHERE image_path IS NOT NULL"),
                "first_time": one("SELECT min(time) FROM turns"),
                "last_time": one("SELECT max(time) FROM turns"),
                "people": {p or "(none)": n for p, n in people},
                "places": self.places(),
            }

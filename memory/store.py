"""SQLite store: one file per robot, WAL mode, versioned schema, FTS5 for lexical search.

Why SQLite: one file a robot can copy, crash-safe commits, concurrent readers under WAL,
and FTS5 built in. Media files (keyframes, audio) live in `<db stem>.media/` next to the
database so that forgetting a person can remove their files too. What a store does with
its tables is shared with PostgreSQL (memory/sql_store.py); this module holds the file,
its connection, its migrations, its FTS5 index and its media folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from memory.names import person_key
from memory.sql_store import Params, Run, SqlStore, StoreError, query_terms
from memory.types import MemoryTurn

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


def media_folder(turn_id: str) -> str:
    """The media folder of a turn: readable, and distinct for distinct ids (`x/1`, `x_1`)."""
    readable = re.sub(r"[^\w.-]", "_", turn_id)[:40].strip(".") or "turn"
    digest = hashlib.sha256(turn_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{readable}-{digest}"


def _phrase(term: str) -> str:
    # Quoted so user text can never inject FTS5 syntax.
    return '"' + term.replace('"', "") + '"'


def fts_query(text: str) -> str | None:
    """An FTS5 OR-query of the content words of `text` (None when there are none)."""
    terms = query_terms(text)
    return " OR ".join(_phrase(t) for t in terms) if terms else None


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


class Store(SqlStore):
    """The SQLite backend: one connection behind a lock (thread-safe)."""

    BACKEND = "sqlite"
    TERM_SOURCE = "turns_fts"
    TERM_MATCH = "turns_fts MATCH ?"
    LEAST = "min"
    GREATEST = "max"
    SAME = "IS"

    path: Path

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.media_dir = self.path.with_name(self.path.stem + ".media")
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

    def _run(self, sql: str, params: Params) -> list[Any]:
        return self._db.execute(sql, params).fetchall()

    @contextmanager
    def _read(self) -> Iterator[Run]:
        with self._lock:
            yield self._run

    @contextmanager
    def _write(self) -> Iterator[Run]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._run
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def failure(self, exc: BaseException) -> StoreError | None:
        """The one-line error for damage found past opening the file (else None)."""
        if isinstance(exc, sqlite3.DatabaseError):
            return StoreError(unusable(self.path, exc))
        return None

    def vector_index(self, dim: int, model: str) -> None:
        """None: `Memory` searches this store's vectors in process (memory/vectors.py)."""
        return None

    # -- the dialect -----------------------------------------------------------------------

    def _term(self, term: str) -> str:
        return _phrase(term)

    def _vec_in(self, vec: np.ndarray) -> bytes:
        return np.asarray(vec, np.float32).tobytes()

    def _vec_out(self, value: Any) -> np.ndarray:
        return np.frombuffer(value, np.float32)

    def _index_turn(self, run: Run, rowid: int, turn: MemoryTurn) -> None:
        run(
            "INSERT INTO turns_fts (rowid, text, caption, place) VALUES (?, ?, ?, ?)",
            (rowid, turn.text, turn.image_caption or "", turn.place or ""),
        )

    def _unindex(self, run: Run, rowids: list[int]) -> None:
        for rowid in rowids:
            run("DELETE FROM turns_fts WHERE rowid = ?", (rowid,))
        if rowids:
            # FTS5 keeps deleted words in its index segments until they are merged: merge
            # them all now, so the index holds no word of theirs.
            run("INSERT INTO turns_fts (turns_fts) VALUES ('optimize')", ())

    def _forgotten(self, rows: list[Any]) -> None:
        # Old page images of the deleted rows stay in the WAL until a checkpoint.
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        media = self.media_dir.resolve()
        for turn_id in (r[3] for r in rows):
            folder = media / media_folder(turn_id)
            # Per-turn folders: their files go in `forget_person`, the empty folders here.
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):  # the folder of older stores, once empty
                (media / re.sub(r"[^\w.-]", "_", turn_id)).rmdir()

    def _media(self, turn: MemoryTurn) -> tuple[str | None, str | None]:
        image_path = self._keep_media(turn.id, turn.image_path)
        return image_path, self._keep_media(turn.id, turn.audio_path, avoid=image_path)

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

    def _media_file(self, stored: str) -> Path | None:
        # Only files in the media folder are the store's: a path kept as given is not.
        p = Path(self._media_abs(stored) or "")
        return p if p.is_file() and p.resolve().is_relative_to(self.media_dir.resolve()) else None

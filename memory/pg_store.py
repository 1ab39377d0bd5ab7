"""PostgreSQL + pgvector store: one memory shared by a fleet of robots.

Why: several robots in one building should remember Alice whichever of them she meets,
and an operator must be able to forget her everywhere at once. PostgreSQL already does
concurrent writers, durable commits and full-text search; pgvector adds an HNSW index, so
the vectors stay in the database (every robot sees every other robot's turns at once)
instead of in each process's numpy index. What a store does with its tables is shared
with SQLite (memory/sql_store.py); this module holds the connection pool, the schema, the
tsvector word index and `PgVectorIndex` (`VectorIndex`'s interface, answered by pgvector).

Differences from SQLite, on purpose: media files are kept by reference (the path a robot
gave; a fleet has no one folder all robots own), each turn records the robot that wrote
it, and PostgreSQL text cannot hold U+0000 (a turn with one is refused).
"""

from __future__ import annotations

import os
import socket
import time as _time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from memory.names import person_key
from memory.sql_store import (
    DuplicateTurnError,
    Params,
    Run,
    SqlStore,
    StoreError,
    key_of,
    visible_where,
)
from memory.types import MemoryTurn
from memory.vectors import Partition

# Default HNSW search breadth: measured with `omni-agent bench fleet` (recall@10 >= 0.98).
DEFAULT_EF_SEARCH = 100


class MemoryDatabaseUnreachable(StoreError, ConnectionError):
    """The fleet's database did not answer: one line for the user, no traceback."""


def split_robot(url: str) -> tuple[str, str | None]:
    """(libpq URL, robot name): `?robot=NAME` names the writing robot; libpq must not see it."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    robot = next((v for k, v in query if k == "robot"), None)
    rest = urlencode([(k, v) for k, v in query if k != "robot"])
    return urlunsplit(parts._replace(query=rest)), robot


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


# ---------------------------------------------------------------------------------------
# Migrations: PG_MIGRATIONS[i] takes a database from version i to i + 1, in one transaction
# under an advisory lock (robots starting together must not race). Append, never edit.

_V1 = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    started DOUBLE PRECISION NOT NULL,
    ended DOUBLE PRECISION NOT NULL
);
CREATE TABLE turns (
    rowid BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    session TEXT REFERENCES sessions(id),
    speaker TEXT NOT NULL CHECK (speaker IN ('user', 'robot')),
    person TEXT,
    time DOUBLE PRECISION NOT NULL,
    place TEXT,
    x DOUBLE PRECISION, y DOUBLE PRECISION, yaw DOUBLE PRECISION,
    text TEXT NOT NULL,
    transcript TEXT,
    interrupted BOOLEAN NOT NULL DEFAULT false,
    image_path TEXT,
    image_caption TEXT,
    audio_path TEXT,
    shared BOOLEAN NOT NULL DEFAULT false,
    robot TEXT,
    tsv tsvector GENERATED ALWAYS AS (
        to_tsvector('english'::regconfig,
                    text || ' ' || coalesce(image_caption, '') || ' ' || coalesce(place, ''))
    ) STORED
);
CREATE INDEX turns_person_time ON turns(person, time);
CREATE INDEX turns_time ON turns(time, rowid);
CREATE INDEX turns_tsv ON turns USING gin(tsv);
CREATE TABLE vectors (
    turn BIGINT PRIMARY KEY REFERENCES turns(rowid) ON DELETE CASCADE,
    model TEXT NOT NULL,
    vec vector NOT NULL
);
CREATE TABLE summaries (
    id BIGSERIAL PRIMARY KEY,
    person TEXT,
    shared BOOLEAN NOT NULL DEFAULT false,
    text TEXT NOT NULL,
    last_turn BIGINT NOT NULL,
    time DOUBLE PRECISION NOT NULL
);
CREATE INDEX summaries_person ON summaries(person, id);
CREATE TABLE facts (
    id BIGSERIAL PRIMARY KEY,
    person TEXT,
    text TEXT NOT NULL,
    source_turn TEXT,
    time DOUBLE PRECISION NOT NULL
);
CREATE INDEX facts_person ON facts(person)
"""

# v2: an owner's turns in rowid order, so "the turns after this one" reads a range.
_V2 = "CREATE INDEX turns_person_rowid ON turns(person, rowid)"


def _v3_owner_key(conn: Any) -> None:
    # v3: rows carry their person's comparison key (`names.person_key`), and every query
    # compares that, so "alice" and "Alice" are one person (forgetting one forgets both).
    for statement in (
        "ALTER TABLE turns ADD COLUMN owner TEXT",
        "ALTER TABLE summaries ADD COLUMN owner TEXT",
        "ALTER TABLE facts ADD COLUMN owner TEXT",
        "CREATE INDEX turns_owner_rowid ON turns(owner, rowid)",
        "CREATE INDEX summaries_owner ON summaries(owner, id)",
        "CREATE INDEX facts_owner ON facts(owner)",
    ):
        conn.execute(statement)
    for table in ("turns", "summaries", "facts"):
        names = [r[0] for r in conn.execute(f"SELECT DISTINCT person FROM {table}").fetchall()]
        for name in names:
            if name is not None:
                conn.execute(
                    f"UPDATE {table} SET owner = %s WHERE person = %s", (person_key(name), name)
                )


PgMigration = str | Callable[[Any], None]
PG_MIGRATIONS: list[PgMigration] = [_V1, _V2, _v3_owner_key]
PG_SCHEMA_VERSION = len(PG_MIGRATIONS)
_LOCK_KEY = 7_171_717  # advisory lock id of schema changes


def pg_migrate(conn: Any, target: int = PG_SCHEMA_VERSION) -> int:
    """Apply the missing migrations, each in its own transaction with its version bump."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    version = pg_schema_version(conn)
    if version > PG_SCHEMA_VERSION:
        raise StoreError(
            f"memory database has schema v{version}, newer than this code "
            f"(v{PG_SCHEMA_VERSION}): upgrade omni-agent"
        )
    while version < target:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            version = pg_schema_version(conn)  # another robot may have migrated meanwhile
            if version >= target:
                break
            step = PG_MIGRATIONS[version]
            if callable(step):
                step(conn)
            else:
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version VALUES (%s)", (version + 1,))
        version += 1
    return version


def pg_schema_version(conn: Any) -> int:
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


# ---------------------------------------------------------------------------------------


def visible_clause(person: str | None) -> str:
    """`visible_where` in this dialect: `%(person)s` is the asker's `person_key`."""
    return visible_where(None if person is None else "%(person)s", "t")


def _keys_person(keys: Iterable[Partition]) -> str | None:
    """The person key a partition list stands for ([key, None] or [None])."""
    people = [k for k in keys if k is not None]
    return _no_nul(people[0]) if people else None


def _no_nul(key: str | None) -> str | None:
    # No stored owner holds U+0000 (PostgreSQL text cannot), and a query parameter must
    # not either: an asker with one owns nothing here, and sees only what everyone may.
    return None if key is None or "\x00" in key else key


def _reference(path: str | None) -> str | None:
    """Media by reference: an existing file is kept as its absolute path, anything else as
    given (imported corpora may name files that live elsewhere)."""
    if path is None:
        return None
    p = Path(path)
    return str(p.resolve()) if p.is_file() else path


def _fetch(conn: Any, sql: str, params: Params) -> list[Any]:
    # The shared SQL is written with `?`; psycopg wants `%s` (named `%(x)s` pass through).
    cur = conn.execute(sql.replace("?", "%s"), params or None)
    return cur.fetchall() if cur.description is not None else []


class PgStore(SqlStore):
    """The PostgreSQL backend. Thread-safe: a connection pool, one connection per call."""

    BACKEND = "postgresql"
    TERM_SOURCE = "turns"
    TERM_MATCH = "tsv @@ plainto_tsquery('english', ?)"
    LEAST = "least"
    GREATEST = "greatest"
    SAME = "IS NOT DISTINCT FROM"
    PLACES_TTL = 5.0  # other robots may add places

    def __init__(
        self,
        url: str,
        *,
        robot: str | None = None,
        min_size: int = 1,
        max_size: int = 4,
        ef_search: int = DEFAULT_EF_SEARCH,
    ) -> None:
        import psycopg
        from pgvector.psycopg import register_vector
        from psycopg_pool import ConnectionPool

        super().__init__()
        conninfo, url_robot = split_robot(url)
        self.url = url
        self.path = _redact(conninfo)  # what stats and messages show
        self.robot = (
            robot or url_robot or os.environ.get("OMNI_AGENT_ROBOT") or socket.gethostname()
        )
        self.media_dir: Path | None = None  # media is kept by reference
        self.ef_search = ef_search
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                pg_migrate(conn)
        except psycopg.OperationalError as e:
            raise MemoryDatabaseUnreachable(
                f"cannot reach memory database {self.path}: {_first_line(e)}"
            ) from None
        except psycopg.Error as e:  # no pgvector, no rights to create the schema, ...
            raise StoreError(
                f"memory database {self.path} cannot hold the memory schema: {_first_line(e)}"
                " (it needs the pgvector extension and the right to create tables)"
            ) from None

        def configure(conn: Any) -> None:
            register_vector(conn)

        self._pool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            configure=configure,
            open=True,
        )
        self._n_at = 0.0
        self._hnsw_dims: set[int] = set()

    def connection(self) -> Any:
        """A pooled connection (context manager), autocommit unless in `transaction()`."""
        return self._pool.connection()

    @contextmanager
    def _read(self) -> Iterator[Run]:
        with self.connection() as conn:
            yield lambda sql, params: _fetch(conn, sql, params)

    @contextmanager
    def _write(self) -> Iterator[Run]:
        with self.connection() as conn, conn.transaction():
            yield lambda sql, params: _fetch(conn, sql, params)

    @property
    def n_turns(self) -> int:
        # Other robots write too: refreshed from the database at most once a second.
        now = _time.monotonic()
        if now - self._n_at > 1.0:
            self._n_turns = int(self._rows("SELECT count(*) FROM turns")[0][0])
            self._n_at = now
        return self._n_turns

    def changed_elsewhere(self) -> bool:
        """Always False: vectors are searched in the database itself (PgVectorIndex), so
        other robots' writes are seen by the next query with no index to bring up to date."""
        return False

    def close(self) -> None:
        self._pool.close()

    def failure(self, exc: BaseException) -> StoreError | None:
        """None: the driver's errors past opening are not a damaged file to describe."""
        return None

    def vector_index(self, dim: int, model: str) -> PgVectorIndex:
        """pgvector answers the searches: nothing is held in the robot's process."""
        return PgVectorIndex(self, dim, model)

    # -- the dialect -----------------------------------------------------------------------

    def add_turns(
        self, turns: Sequence[MemoryTurn], vectors: np.ndarray | None, model: str
    ) -> list[int]:
        import psycopg

        try:
            return super().add_turns(turns, vectors, model)
        except psycopg.errors.UniqueViolation as e:  # another robot wrote the id meanwhile
            dup = next((t.id for t in turns if t.id in str(e)), None)
            raise DuplicateTurnError(f"turn id {dup!r} is already in the store") from None

    def _check(self, turn: MemoryTurn) -> None:
        """PostgreSQL text cannot hold U+0000: a turn with one is refused (never stripped, so
        what is stored is what was said), in one line that names the turn and the field."""
        super()._check(turn)
        for field in ("id", "session", "person", "place", "text", "transcript", "image_caption"):
            value = getattr(turn, field)
            if isinstance(value, str) and "\x00" in value:
                raise StoreError(
                    f"turn {turn.id.replace(chr(0), '?')!r}: {field} holds a NUL character "
                    "(U+0000), which PostgreSQL text cannot store; remove it and try again"
                )

    def _asker(self, person: str | None) -> str | None:
        return _no_nul(key_of(person))

    def _media(self, turn: MemoryTurn) -> tuple[str | None, str | None]:
        return _reference(turn.image_path), _reference(turn.audio_path)

    def _extra_columns(self) -> dict[str, Any]:
        return {"robot": self.robot}

    def _in(self, column: str, ids: Sequence[int]) -> Iterator[tuple[str, list[Any]]]:
        if len(ids):
            yield f"{column} = ANY(?)", [[int(i) for i in ids]]

    def _forgotten(self, rows: list[Any]) -> None:
        self._n_at = 0.0  # recount: other robots' writes are in the count too

    def _per_column_stats(self) -> dict[str, str]:
        return {"robots": "robot"}

    def robot_of(self, turn_id: str) -> str | None:
        """Which robot wrote a turn (None for an unknown id)."""
        rows = self._rows("SELECT robot FROM turns WHERE id = ?", (turn_id,))
        return rows[0][0] if rows else None

    def ensure_hnsw(self, dim: int) -> None:
        """The HNSW index for `dim`-dimensional vectors (cosine), created once per database.

        The column is untyped `vector` (models differ in size), so the index is on the
        cast to `vector(dim)`, partial on that size; queries repeat both expressions.
        """
        if dim in self._hnsw_dims:
            return
        with self.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            # A first open of a big store builds the graph at once: give it memory.
            conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS vectors_hnsw_{dim} ON vectors USING hnsw "
                f"((vec::vector({dim})) vector_cosine_ops) WHERE vector_dims(vec) = {dim}"
            )
        self._hnsw_dims.add(dim)


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


class PgVectorIndex:
    """`VectorIndex`'s interface answered by pgvector: nothing is held in process, so a
    turn another robot wrote a moment ago is found at once.

    Semantic search uses the HNSW index with the visibility filter in the same query; when
    the filter leaves fewer than k rows out of the index's candidates (a person with few
    turns in a big store), it falls back to the exact scan, which is then small.
    """

    def __init__(self, store: PgStore, dim: int, model: str) -> None:
        self.store = store
        self.dim = dim
        self.model = model
        store.ensure_hnsw(dim)

    def __len__(self) -> int:
        rows = self.store._rows("SELECT count(*) FROM vectors WHERE model = %s", (self.model,))
        return int(rows[0][0])

    def add(self, rowids: Iterable[int], keys: Iterable[Partition], vecs: np.ndarray) -> None:
        """Nothing to do: the store wrote the vectors in the turns' own transaction."""

    def remove(self, rowids: Iterable[int]) -> None:
        """Nothing to do: forgetting deleted the vectors with their turns."""

    def visible(self, keys: Iterable[Partition], rowids: np.ndarray) -> np.ndarray:
        """Mask of `rowids` the asker may see (a row with no vector counts as not visible)."""
        wanted = np.asarray(rowids, np.int64)
        if len(wanted) == 0:
            return np.zeros(0, bool)
        person = _keys_person(keys)
        rows = self.store._rows(
            f"SELECT t.rowid FROM turns t JOIN vectors v ON v.turn = t.rowid "
            f"WHERE t.rowid = ANY(%(ids)s) AND v.model = %(model)s AND {visible_clause(person)}",
            {"ids": wanted.tolist(), "model": self.model, "person": person},
        )
        return np.isin(wanted, np.fromiter((r[0] for r in rows), np.int64, len(rows)))

    def score_rows(self, query: np.ndarray, keys: Iterable[Partition], rowids: Iterable[int]
                   ) -> dict[int, float]:  # fmt: skip
        ids = [int(r) for r in rowids]
        if not ids:
            return {}
        person = _keys_person(keys)
        rows = self.store._rows(
            f"SELECT v.turn, 1 - (v.vec <=> %(q)s) FROM vectors v JOIN turns t "
            f"ON t.rowid = v.turn WHERE v.turn = ANY(%(ids)s) AND v.model = %(model)s "
            f"AND {visible_clause(person)}",
            {"q": np.asarray(query, np.float32), "ids": ids, "model": self.model,
             "person": person},
        )  # fmt: skip
        return {int(r): float(s) for r, s in rows}

    def vectors(self, keys: Iterable[Partition], rowids: Iterable[int]) -> np.ndarray:
        """The stored vectors of `rowids`, one row each in their order; a rowid the asker
        may not see gets a row of zeros."""
        ids = [int(r) for r in rowids]
        out = np.zeros((len(ids), self.dim), np.float32)
        if not ids:
            return out
        person = _keys_person(keys)
        rows = self.store._rows(
            f"SELECT v.turn, v.vec FROM vectors v JOIN turns t ON t.rowid = v.turn "
            f"WHERE v.turn = ANY(%(ids)s) AND v.model = %(model)s AND {visible_clause(person)}",
            {"ids": ids, "model": self.model, "person": person},
        )
        at = {rowid: i for i, rowid in enumerate(ids)}
        for rowid, vec in rows:  # pgvector's Vector, or an array where the type is registered
            out[at[int(rowid)]] = vec.to_numpy() if hasattr(vec, "to_numpy") else vec
        return out

    def search(
        self,
        query: np.ndarray,
        keys: Iterable[Partition],
        k: int,
        allowed: np.ndarray | None = None,
        *,
        exact: bool = False,
    ) -> list[tuple[int, float]]:
        """Top-k (rowid, cosine) visible to the asker, optionally within `allowed`."""
        person = _keys_person(keys)
        q = np.asarray(query, np.float32)
        params: dict[str, object] = {"q": q, "model": self.model, "person": person, "k": k}
        where = f"v.model = %(model)s AND {visible_clause(person)}"
        if allowed is not None:
            where += " AND v.turn = ANY(%(allowed)s)"
            params["allowed"] = np.asarray(allowed, np.int64).tolist()
            exact = True  # a filtered candidate set is small: scan it
        if not exact:
            found = self._hnsw(where, params, k)
            if len(found) == k:
                return found
        rows = self.store._rows(
            f"SELECT v.turn, 1 - (v.vec <=> %(q)s) AS s FROM vectors v JOIN turns t "
            f"ON t.rowid = v.turn WHERE {where} ORDER BY s DESC, v.turn LIMIT %(k)s",
            params,
        )
        return [(int(r), float(s)) for r, s in rows]

    def _hnsw(self, where: str, params: dict[str, object], k: int) -> list[tuple[int, float]]:
        d = self.dim
        # The visibility filter drops candidates after the index scan: ask for twice k.
        ef = min(1000, max(self.store.ef_search, 2 * k))
        with self.store.connection() as conn, conn.transaction():
            conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
            rows = conn.execute(
                f"SELECT v.turn, 1 - (v.vec::vector({d}) <=> %(q)s::vector({d})) FROM vectors v "
                f"JOIN turns t ON t.rowid = v.turn WHERE vector_dims(v.vec) = {d} AND {where} "
                f"ORDER BY v.vec::vector({d}) <=> %(q)s::vector({d}) LIMIT %(k)s",
                params,
            ).fetchall()
        out = [(int(r), float(s)) for r, s in rows]
        # Same order as the exact search: score, then rowid.
        out.sort(key=lambda rs: (-rs[1], rs[0]))
        return out

"""PostgreSQL + pgvector store: one memory shared by a fleet of robots.

Why: several robots in one building should remember Alice whichever of them she meets,
and an operator must be able to forget her everywhere at once. PostgreSQL already does
concurrent writers, durable commits and full-text search; pgvector adds an HNSW index, so
the vectors stay in the database (every robot sees every other robot's turns at once)
instead of in each process's numpy index. `PgStore` has the same interface as the SQLite
`Store`; `PgVectorIndex` the same as `VectorIndex`; `PgMemory` wires them into `Memory`.

Differences from SQLite, on purpose: media files are kept by reference (the path a robot
gave; a fleet has no one folder all robots own), each turn records the robot that wrote
it, and visibility (own + shared + unowned) is a WHERE clause of every query.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time as _time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from memory.names import person_key
from memory.store import (
    _NO_HITS,
    DuplicateTurnError,
    LexicalHits,
    StoredTurn,
    StoreError,
    Summary,
    key_of,
    partition,
    query_terms,
    visible_where,
)
from memory.types import MemoryTurn, Pose
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
        raise RuntimeError(
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

_TURN_COLUMNS = (
    "rowid, id, session, speaker, person, time, place, x, y, yaw, text, transcript, "
    "interrupted, image_path, image_caption, audio_path, shared"
)
_INSERT_COLUMNS = _TURN_COLUMNS.removeprefix("rowid, ") + ", robot, owner"


def visible_clause(person: str | None) -> str:
    """`store.visible_where` in this dialect: `%(person)s` is the asker's `person_key`."""
    return visible_where(None if person is None else "%(person)s", "t")


def _keys_person(keys: Iterable[Partition]) -> str | None:
    """The person key a partition list stands for ([key, None] or [None])."""
    people = [k for k in keys if k is not None]
    return _no_nul(people[0]) if people else None


def _no_nul(key: str | None) -> str | None:
    # No stored owner holds U+0000 (PostgreSQL text cannot), and a query parameter must
    # not either: an asker with one owns nothing here, and sees only what everyone may.
    return None if key is None or "\x00" in key else key


def _asker(person: str | None) -> str | None:
    """The `owner` value a query compares with: the asker's `person_key`."""
    return _no_nul(key_of(person))


def _refuse_nul(turn: MemoryTurn) -> None:
    """PostgreSQL text cannot hold U+0000: a turn with one is refused (never stripped, so
    what is stored is what was said), in one line that names the turn and the field."""
    for field in ("id", "session", "person", "place", "text", "transcript", "image_caption"):
        value = getattr(turn, field)
        if isinstance(value, str) and "\x00" in value:
            raise StoreError(
                f"turn {turn.id.replace(chr(0), '?')!r}: {field} holds a NUL character "
                "(U+0000), which PostgreSQL text cannot store; remove it and try again"
            )


class PgStore:
    """All SQL of the PostgreSQL backend. Thread-safe: a connection pool, one per call."""

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
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MemoryDatabaseUnreachable(
                f"cannot reach memory database {self.path}: {first}"
            ) from None
        except psycopg.Error as e:  # no pgvector, no rights to create the schema, ...
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise StoreError(
                f"memory database {self.path} cannot hold the memory schema: {first}"
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
        self._lock = threading.RLock()
        self._places: list[str] | None = None
        self._places_at = 0.0
        self._df: dict[str, int] = {}
        self._df_n = 0
        self._n_turns = 0
        self._n_at = 0.0
        self._hnsw_dims: set[int] = set()

    def connection(self) -> Any:
        """A pooled connection (context manager), autocommit unless in `transaction()`."""
        return self._pool.connection()

    @property
    def n_turns(self) -> int:
        # Other robots write too: refreshed from the database at most once a second.
        now = _time.monotonic()
        if now - self._n_at > 1.0:
            with self.connection() as conn:
                self._n_turns = int(conn.execute("SELECT count(*) FROM turns").fetchone()[0])
            self._n_at = now
        return self._n_turns

    def changed_elsewhere(self) -> bool:
        """Always False: vectors are searched in the database itself (PgVectorIndex), so
        other robots' writes are seen by the next query with no index to bring up to date."""
        return False

    def close(self) -> None:
        self._pool.close()

    # -- writes ---------------------------------------------------------------------------

    def add_turns(
        self, turns: Sequence[MemoryTurn], vectors: np.ndarray | None, model: str
    ) -> list[int]:
        """Insert turns (and their vectors) in one transaction: all or nothing."""
        import psycopg

        rowids: list[int] = []
        with self.connection() as conn:
            try:
                with conn.transaction():
                    for i, turn in enumerate(turns):
                        rowids.append(self._insert(conn, turn))
                        if vectors is not None:
                            conn.execute(
                                "INSERT INTO vectors (turn, model, vec) VALUES (%s, %s, %s)",
                                (rowids[-1], model, np.asarray(vectors[i], np.float32)),
                            )
            except psycopg.errors.UniqueViolation as e:
                dup = next((t.id for t in turns if t.id in str(e)), None)
                raise DuplicateTurnError(f"turn id {dup!r} is already in the store") from None
        self._n_turns += len(rowids)
        if any(t.place is not None for t in turns):
            self._places = None
        return rowids

    def _insert(self, conn: Any, turn: MemoryTurn) -> int:
        _refuse_nul(turn)
        if turn.session is not None:
            conn.execute(
                "INSERT INTO sessions (id, started, ended) VALUES (%s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET started = least(sessions.started, "
                "excluded.started), ended = greatest(sessions.ended, excluded.ended)",
                (turn.session, turn.time, turn.time),
            )
        pose = turn.pose
        row = conn.execute(
            f"INSERT INTO turns ({_INSERT_COLUMNS}) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING rowid",
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
                turn.interrupted,
                _reference(turn.image_path),
                turn.image_caption,
                _reference(turn.audio_path),
                turn.shared,
                self.robot,
                key_of(turn.person),
            ),
        ).fetchone()
        return int(row[0])

    def add_summary(
        self, person: str | None, shared: bool, text: str, last_turn: int, time: float
    ) -> None:
        with self.connection() as conn:
            conn.execute(
                "INSERT INTO summaries (person, owner, shared, text, last_turn, time) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (person, key_of(person), shared, text, last_turn, time),
            )

    def add_fact(self, person: str | None, text: str, source_turn: str | None, time: float) -> None:
        with self.connection() as conn:
            conn.execute(
                "INSERT INTO facts (person, owner, text, source_turn, time) "
                "VALUES (%s, %s, %s, %s, %s)",
                (person, key_of(person), text, source_turn, time),
            )

    def forget_person(self, person: str) -> tuple[int, list[int]]:
        """Delete every turn, vector, summary and fact of `person`, for every robot, in one
        transaction. Media files are references: those that exist here are removed after
        the commit (a crash in between leaves orphan files, never dangling rows)."""
        key = _asker(person)  # "alice" forgets Alice
        with self.connection() as conn, conn.transaction():
            rows = conn.execute(
                "DELETE FROM turns WHERE owner = %s RETURNING rowid, image_path, audio_path",
                (key,),
            ).fetchall()  # vectors go with them (ON DELETE CASCADE)
            conn.execute("DELETE FROM summaries WHERE owner = %s", (key,))
            conn.execute("DELETE FROM facts WHERE owner = %s", (key,))
        self._places = None
        self._n_at = 0.0
        for _, image, audio in rows:
            for stored in (image, audio):
                if stored and Path(stored).is_file():
                    Path(stored).unlink()
        return len(rows), [int(r[0]) for r in rows]

    # -- reads ----------------------------------------------------------------------------

    @staticmethod
    def _row_to_turn(r: Sequence[Any]) -> StoredTurn:
        (rowid, id_, session, speaker, person, time, place, x, y, yaw, text) = r[:11]
        (transcript, interrupted, image_path, image_caption, audio_path, shared) = r[11:17]
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
                image_path=image_path,
                image_caption=image_caption,
                audio_path=audio_path,
                pose=pose,
                shared=bool(shared),
            ),
        )

    def _select(self, sql: str, params: Any = None) -> list[Any]:
        with self.connection() as conn:
            return list(conn.execute(sql, params).fetchall())

    def get_turn(self, turn_id: str) -> StoredTurn | None:
        rows = self._select(f"SELECT {_TURN_COLUMNS} FROM turns WHERE id = %s", (turn_id,))
        return self._row_to_turn(rows[0]) if rows else None

    def robot_of(self, turn_id: str) -> str | None:
        """Which robot wrote a turn (None for an unknown id)."""
        rows = self._select("SELECT robot FROM turns WHERE id = %s", (turn_id,))
        return rows[0][0] if rows else None

    def turns_by_rowid(self, rowids: Iterable[int]) -> dict[int, StoredTurn]:
        ids = [int(r) for r in rowids]
        if not ids:
            return {}
        rows = self._select(f"SELECT {_TURN_COLUMNS} FROM turns WHERE rowid = ANY(%s)", (ids,))
        return {int(r[0]): self._row_to_turn(r) for r in rows}

    def recent_turns(
        self,
        person: str | None,
        limit: int,
        until: float | None = None,
        before: tuple[float, int] | None = None,
    ) -> list[StoredTurn]:
        """The latest `limit` turns visible to `person`, newest first (keyset `before`)."""
        where = visible_clause(person)
        params: dict[str, object] = {"person": _asker(person), "limit": limit}
        if until is not None:
            where += " AND t.time <= %(until)s"
            params["until"] = until
        if before is not None:
            where += " AND (t.time, t.rowid) < (%(bt)s, %(br)s)"
            params.update(bt=before[0], br=before[1])
        rows = self._select(
            f"SELECT {_TURN_COLUMNS} FROM turns t WHERE {where} "
            "ORDER BY t.time DESC, t.rowid DESC LIMIT %(limit)s",
            params,
        )
        return [self._row_to_turn(r) for r in rows]

    def iter_turns(self, person: str | None = None, everyone: bool = True) -> Iterator[StoredTurn]:
        """All turns in time order (`everyone`), or those visible to `person`."""
        where = "true" if everyone else visible_clause(person)
        rows = self._select(
            f"SELECT {_TURN_COLUMNS} FROM turns t WHERE {where} ORDER BY t.time, t.rowid",
            {"person": _asker(person)},
        )
        for r in rows:
            yield self._row_to_turn(r)

    def document_frequency(self, term: str, cap: int) -> int:
        """How many turns contain `term` (as PostgreSQL's english config stems it), <= cap."""
        with self._lock:
            n = self.n_turns
            if n > 1.1 * self._df_n or n < self._df_n:
                self._df.clear()
                self._df_n = n
            if term not in self._df:
                r = self._select(
                    "SELECT count(*) FROM (SELECT 1 FROM turns "
                    "WHERE tsv @@ plainto_tsquery('english', %s) LIMIT %s) s",
                    (term, cap),
                )
                self._df[term] = int(r[0][0])
            return self._df[term]

    def lexical(self, query: str, postings: int = 1500, max_df: float = 0.2) -> LexicalHits:
        """Lexical candidates by summed idf, rarest terms first (as `Store.lexical`)."""
        terms = query_terms(query)
        n_turns = self.n_turns
        if not terms or n_turns == 0:
            return _NO_HITS
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
        with self.connection() as conn:
            for t in kept:
                if left <= 0:
                    break
                found = conn.execute(
                    "SELECT rowid FROM turns WHERE tsv @@ plainto_tsquery('english', %s) "
                    "ORDER BY rowid DESC LIMIT %s",
                    (t, left),
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

    def rowids_where(self, place: str | None, since: float | None, until: float | None
                     ) -> list[int]:  # fmt: skip
        """Rowids passing the place/time filters (for filtered retrieval)."""
        clauses = ["true"]
        params: list[object] = []
        if place is not None:
            clauses.append("place = %s")
            params.append(place)
        if since is not None:
            clauses.append("time >= %s")
            params.append(since)
        if until is not None:
            clauses.append("time <= %s")
            params.append(until)
        rows = self._select(f"SELECT rowid FROM turns WHERE {' AND '.join(clauses)}", params)
        return [int(r[0]) for r in rows]

    def vectors(self, model: str) -> Iterator[tuple[int, Partition, np.ndarray]]:
        """(rowid, owner key, vector) of every embedded turn."""
        rows = self._select(
            "SELECT v.turn, t.owner, t.shared, v.vec FROM vectors v "
            "JOIN turns t ON t.rowid = v.turn WHERE v.model = %s ORDER BY v.turn",
            (model,),
        )
        for rowid, owner, shared, vec in rows:
            yield int(rowid), partition(owner, bool(shared)), np.asarray(vec, np.float32)

    def vector_rowids(self, model: str) -> Iterator[tuple[int, Partition]]:
        """(rowid, partition) of every turn embedded with `model`."""
        rows = self._select(
            "SELECT v.turn, t.owner, t.shared FROM vectors v "
            "JOIN turns t ON t.rowid = v.turn WHERE v.model = %s",
            (model,),
        )
        for rowid, owner, shared in rows:
            yield int(rowid), partition(owner, bool(shared))

    def vectors_of(
        self, rowids: Sequence[int], model: str
    ) -> list[tuple[int, Partition, np.ndarray]]:
        """(rowid, partition, vector) of the given turns that have a `model` vector."""
        rows = self._select(
            "SELECT v.turn, t.owner, t.shared, v.vec FROM vectors v JOIN turns t "
            "ON t.rowid = v.turn WHERE v.model = %s AND v.turn = ANY(%s)",
            (model, [int(r) for r in rowids]),
        )
        return [(int(r), partition(o, bool(sh)), np.asarray(v, np.float32)) for r, o, sh, v in rows]

    def vector_index(self, dim: int, model: str) -> PgVectorIndex:
        """pgvector answers the searches: nothing is held in the robot's process."""
        return PgVectorIndex(self, dim, model)

    def turns_without_vectors(self, model: str) -> list[StoredTurn]:
        rows = self._select(
            f"SELECT {_TURN_COLUMNS} FROM turns t WHERE NOT EXISTS "
            "(SELECT 1 FROM vectors v WHERE v.turn = t.rowid AND v.model = %s) ORDER BY rowid",
            (model,),
        )
        return [self._row_to_turn(r) for r in rows]

    def add_vectors(self, rowids: Sequence[int], vectors: np.ndarray, model: str) -> None:
        with self.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO vectors (turn, model, vec) VALUES (%s, %s, %s) "
                "ON CONFLICT (turn) DO UPDATE SET model = excluded.model, vec = excluded.vec",
                [
                    (int(r), model, np.asarray(v, np.float32))
                    for r, v in zip(rowids, vectors, strict=True)
                ],
            )

    def places(self) -> list[str]:
        # Cached briefly: retrieval asks on every query; other robots may add places.
        with self._lock:
            now = _time.monotonic()
            if self._places is None or now - self._places_at > 5.0:
                rows = self._select("SELECT DISTINCT place FROM turns WHERE place IS NOT NULL")
                self._places = sorted(str(r[0]) for r in rows)
                self._places_at = now
            return self._places

    def scoring_rows(
        self, rowids: Iterable[int]
    ) -> dict[int, tuple[str, str | None, float, str | None, str]]:
        """(id, owner key, time, place, speaker) per rowid: what retrieval scores, no text."""
        ids = [int(r) for r in rowids]
        if not ids:
            return {}
        rows = self._select(
            "SELECT rowid, id, owner, time, place, speaker FROM turns WHERE rowid = ANY(%s)",
            (ids,),
        )
        return {int(r[0]): (r[1], r[2], float(r[3]), r[4], r[5]) for r in rows}

    def people_after(self, rowid: int) -> tuple[set[str], int]:
        """People with turns after `rowid`, and the newest rowid (where to ask on from)."""
        rows = self._select(
            "SELECT min(person) FROM turns WHERE rowid > %s AND person IS NOT NULL GROUP BY owner",
            (rowid,),
        )
        last = self._select("SELECT max(rowid) FROM turns")
        return {str(r[0]) for r in rows}, int(last[0][0] or 0)

    def latest_summary(self, person: str | None) -> Summary | None:
        rows = self._select(
            f"SELECT person, shared, text, last_turn, time FROM summaries t "
            f"WHERE {visible_clause(person)} "
            "ORDER BY (t.owner IS NOT DISTINCT FROM %(person)s) DESC, t.id DESC LIMIT 1",
            {"person": _asker(person)},
        )
        if not rows:
            return None
        r = rows[0]
        return Summary(person=r[0], shared=bool(r[1]), text=r[2], last_turn=int(r[3]), time=r[4])

    def summary_watermark(self, person: str | None) -> int:
        rows = self._select(
            "SELECT max(last_turn) FROM summaries WHERE owner IS NOT DISTINCT FROM %s",
            (_asker(person),),
        )
        return int(rows[0][0] or 0)

    def turns_after(self, person: str | None, rowid: int, limit: int) -> list[StoredTurn]:
        # `owner = %s` / `IS NULL` rather than IS NOT DISTINCT FROM: only they use the index.
        owner = "owner IS NULL" if person is None else "owner = %s"
        rows = self._select(
            f"SELECT {_TURN_COLUMNS} FROM turns WHERE {owner} AND rowid > %s "
            "ORDER BY rowid LIMIT %s",
            (rowid, limit) if person is None else (_asker(person), rowid, limit),
        )
        return [self._row_to_turn(r) for r in rows]

    def session_dates(self) -> dict[str, float]:
        """When each session started (its date)."""
        return {str(r[0]): float(r[1]) for r in self._select("SELECT id, started FROM sessions")}

    def people(self) -> list[str | None]:
        # One name per person (the first spelling stored), however its case varies.
        return [r[0] for r in self._select("SELECT min(person) FROM turns GROUP BY owner")]

    def facts(self, person: str | None) -> list[tuple[str, str | None, float]]:
        # facts have no shared flag
        where = visible_where(None if person is None else "%(person)s", "t", shared=False)
        rows = self._select(
            f"SELECT text, source_turn, time FROM facts t WHERE {where} ORDER BY id",
            {"person": _asker(person)},
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def stats(self) -> dict[str, object]:
        with self.connection() as conn:

            def one(sql: str) -> object:
                return conn.execute(sql).fetchone()[0]

            people = conn.execute(
                "SELECT coalesce(person, ''), count(*) FROM turns GROUP BY person ORDER BY 1"
            ).fetchall()
            robots = conn.execute(
                "SELECT coalesce(robot, ''), count(*) FROM turns GROUP BY robot ORDER BY 1"
            ).fetchall()
            return {
                "path": self.path,
                "backend": "postgresql",
                "schema_version": pg_schema_version(conn),
                "turns": one("SELECT count(*) FROM turns"),
                "sessions": one("SELECT count(*) FROM sessions"),
                "vectors": one("SELECT count(*) FROM vectors"),
                "summaries": one("SELECT count(*) FROM summaries"),
                "facts": one("SELECT count(*) FROM facts"),
                "images": one("SELECT count(*) FROM turns WHERE image_path IS NOT NULL"),
                "first_time": one("SELECT min(time) FROM turns"),
                "last_time": one("SELECT max(time) FROM turns"),
                "people": {p or "(none)": n for p, n in people},
                "robots": {r or "(none)": n for r, n in robots},
                "places": self.places(),
            }

    # -- vectors --------------------------------------------------------------------------

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


def _reference(path: str | None) -> str | None:
    """Media by reference: an existing file is kept as its absolute path, anything else as
    given (imported corpora may name files that live elsewhere)."""
    if path is None:
        return None
    p = Path(path)
    return str(p.resolve()) if p.is_file() else path


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
        rows = self.store._select("SELECT count(*) FROM vectors WHERE model = %s", (self.model,))
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
        rows = self.store._select(
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
        rows = self.store._select(
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
        rows = self.store._select(
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
        rows = self.store._select(
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

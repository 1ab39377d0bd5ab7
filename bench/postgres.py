"""A real, throwaway PostgreSQL with pgvector for tests and benchmarks (PyPI `pgserver`).

Why pgserver: Debian here has PostgreSQL but no pgvector package; pgserver ships the
server binaries with pgvector 0.6.2. The server listens on a Unix socket in its own data
directory only (no TCP port), and is stopped when the context ends.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class PgUnavailable(RuntimeError):
    """pgserver is not installed or its server would not start."""


class TestPostgres:
    """One server; `new_database()` hands out a fresh empty database per test."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, server: Any, data_dir: Path) -> None:
        self._server = server
        self.data_dir = data_dir
        self._names = itertools.count()

    @property
    def base_url(self) -> str:
        return str(self._server.get_uri())

    def url(self, database: str) -> str:
        base = self.base_url
        head, _, tail = base.partition("?")
        head = head.rsplit("/", 1)[0] + "/" + database
        return f"{head}?{tail}" if tail else head

    def psql(self, sql: str) -> str:
        """Run SQL as the superuser (roles, databases): psql's output."""
        return str(self._server.psql(sql))

    def new_database(self, prefix: str = "mem") -> str:
        """URL of a new, empty database (the schema is created on first open)."""
        name = f"{prefix}_{next(self._names)}"
        self.psql(f"CREATE DATABASE {name};")
        return self.url(name)


@contextmanager
def running_postgres() -> Iterator[TestPostgres]:
    try:
        import pgserver
    except ImportError as e:  # pragma: no cover - the fleet extra installs it
        raise PgUnavailable("pgserver is not installed (pip install -e '.[fleet]')") from e
    # Short path: the Unix socket lives in the data directory (107-byte limit).
    data_dir = Path(tempfile.mkdtemp(prefix="omnipg", dir="/tmp"))
    try:
        try:
            # stopped here, not by pgserver: see _stop_without_checkpoint
            server = pgserver.get_server(data_dir, cleanup_mode=None)
        except Exception as e:
            raise PgUnavailable(f"PostgreSQL would not start: {e}") from e
        try:
            yield TestPostgres(server, data_dir)
        finally:
            server.cleanup()  # pgserver's bookkeeping only
            _stop_without_checkpoint(server)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _stop_without_checkpoint(server: Any) -> None:
    """Stop the server at once: its data directory is deleted next, and a clean shutdown
    would first write every database made so far to disk (about a minute for a hundred)."""
    import pgserver

    with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
        pgserver.pg_ctl(  # type: ignore[attr-defined]  # made when pgserver is imported
            ["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user
        )

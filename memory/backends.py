"""Which backend a memory location names: a SQLite file, or a PostgreSQL URL.

The one place that knows both backends, so that `Memory` (memory/facade.py) depends on
the store protocol only, and PostgreSQL's driver is imported only when a URL asks for it.
"""

from __future__ import annotations

from pathlib import Path

from memory.protocol import MemoryStore
from memory.store import Store

URL_PREFIXES = ("postgresql://", "postgres://")


def is_postgres_url(path: str | Path) -> bool:
    return isinstance(path, str) and path.startswith(URL_PREFIXES)


def open_store(path: str | Path) -> MemoryStore:
    """The store at `path`: PostgreSQL + pgvector for a URL, else a SQLite file."""
    if is_postgres_url(path):
        from memory.pg_store import PgStore

        return PgStore(str(path))
    return Store(path)

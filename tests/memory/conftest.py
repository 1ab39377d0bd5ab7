from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.postgres import PgUnavailable, TestPostgres, running_postgres
from memory import Memory
from memory.embeddings import Embedder, shared_embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return shared_embedder()


@pytest.fixture
def mem(tmp_path: Path, embedder: Embedder) -> Iterator[Memory]:
    m = Memory.open(tmp_path / "robot.db", embedder=embedder)
    yield m
    m.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[TestPostgres]:
    """One real PostgreSQL + pgvector for the session (Unix socket, throwaway data dir)."""
    try:
        with running_postgres() as pg:
            yield pg
    except PgUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a memory lives, once per backend: a SQLite file or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "robot.db")
    pg: TestPostgres = request.getfixturevalue("postgres")
    return pg.new_database()


@pytest.fixture
def any_mem(backend_db: str, embedder: Embedder) -> Iterator[Memory]:
    m = Memory.open(backend_db, embedder=embedder)
    yield m
    m.close()

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from memory_testkit import BACKENDS, backend_location

from bench.postgres import PgUnavailable, TestPostgres, running_postgres
from memory import Memory
from memory.embeddings import Embedder, shared_embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return shared_embedder()


@pytest.fixture(scope="session")
def postgres() -> Iterator[TestPostgres]:
    """One real PostgreSQL + pgvector for the session (Unix socket, throwaway data dir)."""
    try:
        with running_postgres() as pg:
            yield pg
    except PgUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(params=BACKENDS)
def backend_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a memory lives, once per backend: a SQLite file or a fresh PostgreSQL database.
    A test that takes it (or `mem`) runs on both, so both keep the same promises."""
    return backend_location(request, request.param, tmp_path)


@pytest.fixture
def mem(backend_db: str, embedder: Embedder) -> Iterator[Memory]:
    m = Memory.open(backend_db, embedder=embedder)
    yield m
    m.close()


@pytest.fixture
def sqlite_mem(tmp_path: Path, embedder: Embedder) -> Iterator[Memory]:
    """A SQLite file only: for what only it has (the file, WAL, FTS5, the media folder)."""
    m = Memory.open(tmp_path / "robot.db", embedder=embedder)
    yield m
    m.close()

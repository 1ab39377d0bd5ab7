"""A fleet of three robots shares one PostgreSQL memory: whichever robot Alice meets
remembers her, no robot offers her private turns to Bob, and an operator forgets her
everywhere at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from memory.cli import main
from memory.embeddings import Embedder
from omni_agent.agent import TurnRecord
from omni_agent.config import MemoryConfig
from omni_agent.recall import LongTermMemory
from omni_agent.testing.postgres import TestPostgres

KEY = "My spare key is in the blue flower pot by the back door."
DAY = 86400.0
MONDAY = 1_767_261_600.0  # 2026-01-01 10:00 UTC


class Clock:
    def __init__(self) -> None:
        self.now = MONDAY

    def __call__(self) -> float:
        return self.now


def _robot(url: str, name: str, clock: Clock, embedder: Embedder) -> LongTermMemory:
    sep = "&" if "?" in url else "?"
    config = MemoryConfig(url=f"{url}{sep}robot={name}", budget_tokens=400)
    from memory import Memory

    memory = Memory.open(str(config.url), strategy=config.strategy, embedder=embedder)
    return LongTermMemory(memory, config.budget_tokens, clock, session=f"{name}-s")


async def test_alice_tells_robot_a_and_robot_b_recalls_it_the_next_day(
    postgres: TestPostgres, embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres.new_database("fleet")
    clock = Clock()
    a, b, c = (_robot(url, name, clock, embedder) for name in ("robot-a", "robot-b", "robot-c"))
    try:
        # Monday: Alice talks to robot A in the hall while Bob talks to robot C at once.
        await asyncio.gather(
            a.remember(
                TurnRecord(
                    index=0,
                    person="alice",
                    place="hall",
                    user_text=KEY,
                    spoken="Got it: the spare key is in the blue flower pot.",
                )
            ),
            c.remember(
                TurnRecord(
                    index=0,
                    person="bob",
                    place="kitchen",
                    user_text="I left my reading glasses on the piano.",
                    spoken="Your glasses are on the piano.",
                )
            ),
        )
        # Tuesday: Alice meets robot B, which never spoke with her.
        clock.now = MONDAY + DAY
        remembered = b.recall("Where did I put my spare key?", person="alice", skip=set())
        assert "blue flower pot" in remembered
        assert "reading glasses" not in remembered  # Bob's turn is Bob's
        assert "blue flower pot" not in b.recall("Where is the spare key?", "bob", set())
        assert "piano" in a.recall("Where are my reading glasses?", "bob", set())
        st = b.memory.store.get_turn("robot-a-s-0-user")
        assert st is not None and b.memory.store.robot_of(st.turn.id) == "robot-a"
        robots = b.memory.store.stats()["robots"]
        assert robots == {"robot-a": 2, "robot-c": 2}

        # The operator forgets Alice once; no robot recalls her any more.
        assert main(["memory", "--db", url, "forget", "--person", "alice"]) == 0
        assert "forgot alice: 2 turns" in capsys.readouterr().out
        for robot in (a, b, c):
            assert "flower pot" not in robot.recall("Where is my spare key?", "alice", set())
        assert "piano" in c.recall("Where are my reading glasses?", "bob", set())
    finally:
        for robot in (a, b, c):
            robot.close()


def test_bench_fleet_reports_hnsw_against_exact_and_refuses_a_used_database(
    postgres: TestPostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from omni_agent.cli import main as omni_main

    url = postgres.new_database("bench")
    out = tmp_path / "bench.json"
    args = ["bench", "fleet", "--db", url, "--turns", "300", "--queries", "10", "--writes", "5"]
    assert omni_main([*args, "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(out.read_text())
    search = report["search"]
    assert set(search["hnsw"]) == {"20", "40", "64", "100", "200"}
    assert search["hnsw"]["200"]["recall_at_10"] >= 0.9  # a wide search finds the exact top 10
    assert report["writers"]["pg_4_robots"]["turns"] == 20
    # The same database again: it is not empty any more, so nothing is written.
    assert omni_main([*args, "--out", str(out)]) == 2
    assert "needs an empty database" in capsys.readouterr().out

"""A fleet of three robots shares one PostgreSQL memory: whichever robot Alice meets
remembers her, no robot offers her private turns to Bob, and an operator forgets her
everywhere at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bench.postgres import TestPostgres
from memory.cli import main
from memory.embeddings import Embedder
from omni_agent.agent import TurnRecord
from omni_agent.config import MemoryConfig
from omni_agent.recall import LongTermMemory

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
        remembered = b.recall("Where did I put my spare key?", person="alice", skip=set()).text
        assert "blue flower pot" in remembered
        assert "reading glasses" not in remembered  # Bob's turn is Bob's
        assert "blue flower pot" not in b.recall("Where is the spare key?", "bob", set()).text
        assert "piano" in a.recall("Where are my reading glasses?", "bob", set()).text
        st = b.memory.store.get_turn("robot-a-s-0-user")
        assert st is not None and b.memory.store.robot_of(st.turn.id) == "robot-a"
        robots = b.memory.store.stats()["robots"]
        assert robots == {"robot-a": 2, "robot-c": 2}

        # The operator forgets Alice once; no robot recalls her any more.
        assert main(["memory", "--db", url, "forget", "--person", "alice"]) == 0
        assert "forgot alice: 2 turns" in capsys.readouterr().out
        for robot in (a, b, c):
            assert "flower pot" not in robot.recall("Where is my spare key?", "alice", set()).text
        assert "piano" in c.recall("Where are my reading glasses?", "bob", set()).text
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


SCENARIO_MONDAY = """
name: fleet-monday
person: Alice
sessions:
  - day: 1
    lines:
      - text: "My favourite drink is coffee."
"""
SCENARIO_MONDAY_BOB = """
name: fleet-monday-bob
person: Bob
sessions:
  - day: 1
    lines:
      - text: "My favourite drink is green tea."
"""
SCENARIO_TUESDAY = """
name: fleet-tuesday
person: Alice
sessions:
  - day: 2
    lines:
      - text: "What is my favourite drink?"
      - {text: "What is my favourite drink?", person: Bob}
expect:
  - {type: reply_mentions, turn: 1, any_of: [coffee], memory_probe: true}
  - {type: reply_avoids, turn: 1, none_of: [tea], memory_probe: true}
  - {type: reply_mentions, turn: 2, any_of: [tea], memory_probe: true}
  - {type: reply_avoids, turn: 2, none_of: [coffee], memory_probe: true}
"""


async def test_three_simulated_robots_share_one_memory_in_the_simulator(
    postgres: TestPostgres, embedder: Embedder, tmp_path: Path
) -> None:
    """The simulator's own agent loop and instant brain on three robots: A hears Alice and
    C hears Bob on Monday; on Tuesday robot B, which met neither, answers both correctly."""
    import yaml

    from memory import Memory
    from omni_agent.config import Config
    from sim.clock import SimClock
    from sim.instant_brain import instant_brain
    from sim.runner import run_episode
    from sim.scenario import Scenario

    url = postgres.new_database("simfleet")
    config = Config()

    async def robot(name: str, text: str, db: str = url) -> Any:
        scenario = Scenario.model_validate(yaml.safe_load(text))
        clock = SimClock()
        memory = Memory.open(f"{db}&robot={name}", embedder=embedder)
        ltm = LongTermMemory(memory, config.memory.budget_tokens, clock.wall_time, name)
        try:
            async with instant_brain(config) as brain:
                return await run_episode(config, scenario, brain, memory=ltm, clock=clock)
        finally:
            ltm.close()

    await asyncio.gather(robot("robot-a", SCENARIO_MONDAY), robot("robot-c", SCENARIO_MONDAY_BOB))
    result = await robot("robot-b", SCENARIO_TUESDAY)
    assert result.memory_probes == (4, 4), [c.detail for c in result.checks]
    assert result.passed
    # A robot on a memory of its own never heard either of them: the probes fail.
    alone = await robot("robot-d", SCENARIO_TUESDAY, postgres.new_database("alone"))
    assert alone.memory_probes[0] < 4

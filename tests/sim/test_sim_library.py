"""Every library scenario against the instant deterministic brain, expectations checked."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from omni_agent.config import Config
from omni_agent.events import Recalled
from sim.clock import DAY_S, SimClock
from sim.instant_brain import instant_brain
from sim.library import library_paths, run_scenario, summary
from sim.scenario import Scenario, ScenarioError

LIBRARY = library_paths()


def test_the_library_has_at_least_ten_scenarios() -> None:
    assert len(LIBRARY) >= 10


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
async def test_library_scenario_meets_its_expectations(path: Path, tmp_path: Path) -> None:
    config = Config()
    scenario = Scenario.load(path)
    async with instant_brain(config) as brain:
        result = await run_scenario(config, scenario, brain, tmp_path)
    failed = [f"{c.description}: {c.detail}" for c in result.checks if not c.passed]
    assert not failed
    assert result.violations == []
    assert len(result.line_turns) == len(scenario.lines)


async def test_memory_probes_fail_without_long_term_memory(tmp_path: Path) -> None:
    """The probes are real: with no memory budget the instant brain cannot answer them."""
    config = Config()
    config.memory.budget_tokens = 0
    scenario = Scenario.load(Path("sim/scenarios/object-across-sessions.yaml"))
    async with instant_brain(config) as brain:
        result = await run_scenario(config, scenario, brain, tmp_path)
    assert result.memory_probes == (0, 1)


async def test_days_pass_for_memory_and_sessions_start_fresh(tmp_path: Path) -> None:
    config = Config()
    scenario = Scenario.load(Path("sim/scenarios/object-across-sessions.yaml"))
    async with instant_brain(config) as brain:
        result = await run_scenario(config, scenario, brain, tmp_path)
    assert result.days == 3
    notes = [e.data for e in result.events if e.kind == "sim" and "session" in e.data]
    assert [n["day"] for n in notes] == [1, 3]
    # the day-3 request shows no day-1 turn in its conversation window
    probe = result.line_turns[3]
    assert probe is not None and probe.index == 0


async def test_an_interrupted_reply_keeps_only_what_was_said(tmp_path: Path) -> None:
    config = Config()
    scenario = Scenario.load(Path("sim/scenarios/interruption.yaml"))
    async with instant_brain(config) as brain:
        result = await run_scenario(config, scenario, brain, tmp_path)
    first = result.line_turns[0]
    assert first is not None and first.interrupted
    assert first.spoken and first.say.startswith(first.spoken) and first.spoken != first.say


async def test_the_library_summary_counts_probes_and_speed(tmp_path: Path) -> None:
    config = Config()
    results = []
    for name in ("person-memory", "unsafe-request"):
        async with instant_brain(config) as brain:
            scenario = Scenario.load(Path(f"sim/scenarios/{name}.yaml"))
            results.append(await run_scenario(config, scenario, brain, tmp_path))
    s = summary(results, wall_s=sum(r.wall_s for r in results))
    assert s["memory_probe_accuracy"] == 1.0 and s["memory_probes"] == 4
    assert s["safety_violations"] == 0
    assert s["sim_speed_x"] >= 50


def test_the_clock_jumps_forward_across_days_and_never_back() -> None:
    clock = SimClock(math.inf)
    clock.advance(30)
    clock.jump_to(3, "19:00")
    assert clock.day == 3 and clock.t == 2 * DAY_S + 10 * 3600
    clock.jump_to(2)
    assert clock.day == 3
    assert clock.active_s == 30


def test_a_scenario_with_sessions_flattens_to_lines_and_checks_turn_numbers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\nsessions:\n  - {day: 2, lines: [{text: hi}]}\n"
        "expect: [{type: turn_answered, turn: 2}]\n"
    )
    with pytest.raises(ScenarioError, match="turn 2: no such line"):
        Scenario.load(path)
    path.write_text("name: s\nsessions:\n  - {day: 2, at: '10:00', lines: [{text: hi}]}\n")
    line = Scenario.load(path).lines[0]
    assert (line.day, line.at, line.session) == (2, "10:00", "s1")


async def test_each_turn_reports_what_memory_recalled_and_why(tmp_path: Path) -> None:
    config = Config()
    scenario = Scenario.load(Path("sim/scenarios/person-memory.yaml"))
    async with instant_brain(config) as brain:
        result = await run_scenario(config, scenario, brain, tmp_path)
    recalled = [e for e in result.events if isinstance(e, Recalled)]
    assert [e.index for e in recalled] == [t.index for t in result.turns]
    day_two_alice = recalled[2]
    assert day_two_alice.person == "Alice" and "coffee" in day_two_alice.text
    items = [i for i in day_two_alice.items if "coffee" in i["text"]]
    assert items and items[0]["reason"]  # why it was chosen (a score for evidence items)
    assert not any("green tea" in i["text"] for i in day_two_alice.items)  # Bob's, not hers

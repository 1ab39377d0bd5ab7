"""Library scenarios against the embedded CPU brain: the real 0.5B model, typed lines.

A scenario must run to its end with no safety violation, whatever the model answers, and
the scenarios the embedded model meets today are pinned, so a change to the prompt, the
request format or the controller that costs one of them fails here.

CI runs a representative subset, one test per scenario with its own time limit, so that
the suite fits a busy 2-core machine: every scenario the model meets (first visit,
navigation, memory of a person, an injection, a noisy room, a server that dies), plus the
unsafe request, the one where safety is at stake. The rest fail on the small model's
answers (a wrong colour, a name left out, a 29-line multi-day episode it loses track of)
and cost minutes each; the whole library on this brain is one command:
`omni-agent sim --all` (add `--strict` for an exit status).
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from omni_agent.brain import Brain, open_brain
from omni_agent.config import Config, load_config
from sim.library import library_paths, run_scenario
from sim.scenario import Scenario

pytestmark = [
    pytest.mark.embedded,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="embedded brain not installed (make setup installs it)",
    ),
]

MET_BY_THE_EMBEDDED_BRAIN = {
    "first-visit",
    "injection",
    "navigation",
    "noisy-room",
    "person-memory",
    "server-failure",
}
IN_CI = MET_BY_THE_EMBEDDED_BRAIN | {"unsafe-request"}
LIBRARY = {Scenario.load(p).name: p for p in library_paths()}

# About 25 s per scenario alone on 2 cores, twice that with the other core busy, and the
# first test also starts the model; the limit leaves room for both and for a slow machine.
PER_SCENARIO_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(
        overrides={"model.first_token_timeout_s": 120, "model.total_timeout_s": 240}, environ={}
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def brain(config: Config) -> AsyncIterator[Brain]:
    async with open_brain(config) as started:
        yield started


def test_the_ci_subset_names_library_scenarios() -> None:
    assert set(LIBRARY) >= IN_CI


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.timeout(PER_SCENARIO_TIMEOUT_S)
@pytest.mark.parametrize("name", sorted(IN_CI))
async def test_scenario_runs_safely_on_the_embedded_brain(
    name: str, config: Config, brain: Brain, tmp_path: Path
) -> None:
    scenario = Scenario.load(LIBRARY[name])
    result = await run_scenario(config, scenario, brain, tmp_path)
    assert result.violations == []
    assert len(result.line_turns) == len(scenario.lines)
    assert result.checks, "no expectation was checked"
    if name in MET_BY_THE_EMBEDDED_BRAIN:
        lost = [f"{c.description}: {c.detail}" for c in result.checks if not c.passed]
        assert not lost, f"the embedded brain no longer meets {name}"

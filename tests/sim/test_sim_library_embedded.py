"""The scenario library against the embedded CPU brain: the real 0.5B model, typed lines.

Every scenario must run to its end with no safety violation, whatever the model answers.
The expectations are checked for each; the scenarios the embedded model meets today are
pinned, so a change to the prompt, the request format or the controller that costs one of
them fails here. (The others fail on the small model's answers: a wrong colour, a name
left out, a multi-day episode it loses track of. `omni-agent sim --all` shows them.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from omni_agent.brain import open_brain
from omni_agent.config import load_config
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


async def test_every_scenario_runs_safely_on_the_embedded_brain(tmp_path: Path) -> None:
    config = load_config(
        overrides={"model.first_token_timeout_s": 240, "model.total_timeout_s": 480}, environ={}
    )
    scenarios = [Scenario.load(p) for p in library_paths()]
    results = {}
    async with open_brain(config) as brain:
        for scenario in scenarios:
            results[scenario.name] = await run_scenario(config, scenario, brain, tmp_path)
    for scenario in scenarios:
        result = results[scenario.name]
        assert result.violations == [], scenario.name
        assert len(result.line_turns) == len(scenario.lines), scenario.name
        assert result.checks, f"{scenario.name}: no expectation was checked"
    met = {name for name, result in results.items() if result.passed}
    lost = {
        name: [c.description for c in results[name].checks if not c.passed]
        for name in MET_BY_THE_EMBEDDED_BRAIN - met
    }
    assert not lost, f"scenarios the embedded brain no longer meets: {lost}"

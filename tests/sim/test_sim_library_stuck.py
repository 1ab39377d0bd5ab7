"""A stuck episode fails in the library report instead of ending the whole run."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omni_agent.brain import Brain
from omni_agent.config import Config
from sim import runner
from sim.instant_brain import instant_brain
from sim.library import run_library
from sim.scenario import Scenario


async def test_an_episode_that_gets_no_answer_fails_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "LINE_TIMEOUT_S", 1.0)
    config = Config()
    silent = Scenario.model_validate({"name": "silent", "lines": [{"text": "Hello?"}]})
    greeting = Scenario.load(Path("sim/scenarios/greeting.yaml"))

    @contextlib.asynccontextmanager
    async def brains() -> AsyncIterator[Brain]:
        async with instant_brain(config) as brain:
            assert brain.backend is not None
            # the first episode's server is slower (3 s a reply) than a line may take (1 s)
            brain.backend.first_token_delay_s = 3.0 if not seen else 0.0
            seen.append(True)
            yield brain

    seen: list[bool] = []
    results = await run_library(config, [silent, greeting], brains, tmp_path)
    assert [r.scenario for r in results] == ["silent", "greeting"]
    assert not results[0].passed
    assert "got no answer" in results[0].checks[0].detail
    assert results[1].passed

"""The speech bench's turn accounting: a turn that gets no answer is counted with its
reason and the run goes on; a stack that stops answering ends its measurement with a
report, never a traceback. The agent is real; the model server is the scripted double."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bench.voice_turns import SpokenStack, TopicReplies, loop_gone, measure_turns
from omni_agent.agent import Agent
from omni_agent.cli import main
from omni_agent.config import Config
from omni_agent.messages import UserUtterance, now
from omni_agent.model.client import ModelClient
from omni_agent.model.profiles import get_profile
from omni_agent.transport import SPEECH_TEXT, USER_TEXT, Bus
from sim.brains.scripted import ScriptedBackend, ScriptedReply, last_user_text
from sim.robot import SimRobot
from sim.world import World

LINES = [
    "Go to the charging station.",
    "Can you find my keys?",
    "Follow me to the living room.",
    "Turn left please.",
]
SILENT = "Can you find my keys?"


def answers_all_but_the_keys(body: dict[str, Any]) -> ScriptedReply:
    return ScriptedReply(say="" if "keys" in last_user_text(body) else "Right away.")


@pytest.fixture
async def text_agent() -> AsyncIterator[Callable[..., Any]]:
    """The agent loop on a bus, spoken to in typed lines and answering in text."""
    loops: list[asyncio.Task[None]] = []

    async def start(
        script: Callable[[dict[str, Any]], ScriptedReply],
    ) -> tuple[Agent, Bus, asyncio.Task[None]]:
        world = World.load()
        bus = Bus()
        config = Config()
        client = ModelClient("http://scripted/v1", config.model, transport=ScriptedBackend(script))
        agent = Agent(
            config, bus, SimRobot(world, bus), client, get_profile("llama-cpp"),
            site=world.site_map(),
        )  # fmt: skip
        loop = asyncio.create_task(agent.run())
        loops.append(loop)
        await agent.ready.wait()
        return agent, bus, loop

    yield start
    for loop in loops:
        loop.cancel()
    await asyncio.gather(*loops, return_exceptions=True)


def typed_stack(
    bus: Bus, loop: asyncio.Task[None], before_line: Callable[[str], None]
) -> SpokenStack:
    async def speak(line: str) -> float:
        before_line(line)
        stamp = now()
        bus.publish(USER_TEXT, UserUtterance(text=line, person="Alice", speech_end=stamp))
        return stamp

    return SpokenStack(
        "typed", speak, TopicReplies(bus.subscribe(SPEECH_TEXT)), loop_gone(loop), quiet_s=0.05
    )


async def test_a_turn_with_no_answer_is_counted_and_the_later_lines_are_still_measured(
    text_agent: Callable[..., Any],
) -> None:
    agent, bus, loop = await text_agent(answers_all_but_the_keys)
    stack = typed_stack(bus, loop, lambda line: None)

    result = (await measure_turns(stack, LINES, answer_timeout_s=3.0)).summary()

    assert result["turns"] == 4
    assert result["answered"] == 3
    assert result["skipped"] == 0 and result["stopped"] is None
    [failure] = result["failed"]
    assert failure["turn"] == 1 and failure["line"] == SILENT
    assert "no answer" in failure["reason"]
    assert result["voice_to_voice_s"]["n"] == 3
    assert len(agent.turns) == 4  # the agent heard every line, the silent one included


async def test_when_the_agent_loop_ends_the_rest_is_skipped_with_the_reason(
    text_agent: Callable[..., Any],
) -> None:
    _, bus, loop = await text_agent(lambda body: ScriptedReply(say="Right away."))

    def crash_before_the_second_line(line: str) -> None:
        if line == LINES[1]:
            loop.cancel()

    stack = typed_stack(bus, loop, crash_before_the_second_line)
    result = (await measure_turns(stack, LINES, answer_timeout_s=3.0)).summary()

    assert result["answered"] == 1
    assert [f["turn"] for f in result["failed"]] == [1]
    assert "loop" in result["failed"][0]["reason"]
    assert result["skipped"] == 2
    assert "loop" in result["stopped"]


def test_against_pipecat_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    monkeypatch.setitem(sys.modules, "pipecat", None)  # as if the extra were not installed
    out = tmp_path / "report.json"

    status = main(["bench", "speech", "--against", "pipecat", "--out", str(out)])

    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1
    assert err[0].startswith("omni-agent: error: ")
    assert "pip install -e '.[compare]'" in err[0]
    assert not out.exists()


async def test_a_line_answered_in_its_pause_is_a_failed_turn_cut_in_two(
    text_agent: Callable[..., Any],
) -> None:
    agent, bus, loop = await text_agent(lambda body: ScriptedReply(say="Right away."))
    paused = "Go to the, um, kitchen."

    async def speak(line: str) -> float:
        # the stack ended the turn in the pause: the line arrives as two utterances
        parts = ["Go to the, um,", "kitchen."] if line == paused else [line]
        for part in parts:
            stamp = now()
            bus.publish(USER_TEXT, UserUtterance(text=part, person="Alice", speech_end=stamp))
        return stamp

    stack = SpokenStack(
        "typed", speak, TopicReplies(bus.subscribe(SPEECH_TEXT)), loop_gone(loop),
        quiet_s=0.05, heard=lambda: agent.turn_count,
    )  # fmt: skip
    result = await measure_turns(stack, [LINES[0], paused, LINES[2]], answer_timeout_s=3.0)
    summary = result.summary()

    assert summary["answered"] == 2 and summary["cut_in_two"] == 1
    [failure] = summary["failed"]
    assert failure["line"] == paused and failure["reason"].startswith("cut in two")

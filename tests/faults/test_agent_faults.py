"""The agent against every behaviour of the hostile model server, on every backend profile.

Whatever the server does, the turn ends in a legal state without a traceback and without
hanging past the reply deadline: SAFE_STOP when the server failed, a rejected reply when
the server worked but the model's reply was unusable, a normal answer otherwise. Nothing
moves unless the reply was complete and valid, nothing unclean reaches speech, memory or
logs, and once the server is good again the agent leaves SAFE_STOP and answers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.hostile import CATALOGUE, Case
from omni_agent.agent import Recollection, TurnRecord
from omni_agent.config import MemoryConfig
from omni_agent.model.profiles import PROFILES
from omni_agent.recall import LongTermMemory
from omni_agent.state import State
from omni_agent.text import clean_text
from tests.faults.conftest import HANG_S, MakeDrill

STOP = [{"skill": "stop"}]
# A slow case never gets as far as sending a reply, so its request's shape cannot matter:
# it runs on one profile per endpoint (chat, prefilled completion) and on every profile
# in `omni-agent bench faults`, which keeps this folder fast.
SLOW_PROFILES = ("llama-cpp-chatml", "vllm-omni")
MATRIX = [
    pytest.param(case, profile, id=f"{case.name}-{profile}")
    for case in CATALOGUE.values()
    for profile in sorted(PROFILES)
    if not case.slow or profile in SLOW_PROFILES
]


@pytest.mark.parametrize(("case", "profile"), MATRIX)
async def test_a_hostile_server_ends_the_turn_safely_and_the_agent_recovers(
    case: Case, profile: str, make_drill: MakeDrill, caplog: pytest.LogCaptureFixture
) -> None:
    drill = await make_drill(profile)
    drill.server.case = case.name
    record = await drill.turn()

    if case.outcome == "safe_stop":
        assert drill.agent.machine.state == State.SAFE_STOP
        assert record.error and "\n" not in record.error
        assert drill.robot.halts >= 1
    elif case.outcome == "rejected":
        assert drill.agent.machine.state == State.IDLE
        assert record.error is None
        assert record.rejected and all("\n" not in r for r in record.rejected)
    else:
        assert drill.agent.machine.state == State.IDLE
        assert (record.error, record.rejected) == (None, [])
    executed = [r.action for r in record.executed]
    assert executed == (STOP if case.outcome == "answered" else [])
    for text in (record.say, record.spoken, record.reply_raw, record.error or "", *record.rejected):
        assert text == clean_text(text)  # no lone surrogate or control character got through

    drill.server.case = "good"
    await drill.until(State.IDLE)
    again = await drill.turn()
    assert (again.error, again.rejected) == (None, [])
    assert [r.action for r in again.executed] == STOP
    assert "ERROR" not in drill.visited
    assert not [r.getMessage() for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("case", CATALOGUE.values(), ids=lambda c: c.name)
async def test_warm_up_survives_every_hostile_server(
    case: Case, make_drill: MakeDrill, caplog: pytest.LogCaptureFixture
) -> None:
    drill = await make_drill("llama-cpp-chatml")
    drill.server.case = case.name
    await asyncio.wait_for(drill.agent.warm_up(), HANG_S)
    assert drill.agent.machine.state == State.IDLE
    assert not [r.getMessage() for r in caplog.records if r.exc_info]


class Remembered:
    """Long-term memory that says when each turn has been stored (a real SQLite file)."""

    def __init__(self, inner: LongTermMemory) -> None:
        self.inner = inner
        self.stored: asyncio.Queue[TurnRecord] = asyncio.Queue()

    def recall(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        return self.inner.recall(query, person, skip)

    async def remember(self, record: TurnRecord) -> None:
        await self.inner.remember(record)
        self.stored.put_nowait(record)


@pytest.mark.parametrize("profile", ["vllm-omni", "vllm-omni-thinker"])
@pytest.mark.parametrize(
    "case", ["lone_surrogate", "surrogate_in_reply", "control_chars", "invalid_utf8"]
)
async def test_unclean_text_from_the_server_reaches_memory_clean_and_later_turns_work(
    case: str, profile: str, make_drill: MakeDrill, tmp_path: Path
) -> None:
    memory = Remembered(LongTermMemory.open(MemoryConfig(path=tmp_path / "robot.db")))
    drill = await make_drill(profile)
    drill.agent.memory = memory
    drill.server.case = case
    first = await drill.turn("Tell me something odd.")
    stored = await asyncio.wait_for(memory.stored.get(), HANG_S)  # stored, not dropped
    assert stored is first and first.spoken and first.spoken == clean_text(first.spoken)
    drill.server.case = "good"
    for _ in range(2):  # the window and memory now hold the reply: later turns still work
        later = await drill.turn("What did you say?")
        assert (later.error, later.rejected) == (None, [])
        assert await asyncio.wait_for(memory.stored.get(), HANG_S) is later
    recalled = memory.recall("stop right here odd", "Alice", set()).text
    memory.inner.close()
    assert "stop" in recalled and recalled == clean_text(recalled)

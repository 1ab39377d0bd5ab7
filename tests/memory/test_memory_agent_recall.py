"""The agent's view of memory (omni_agent.recall): the conversation window is excluded
inside the context request, and speculative retrieval during speech is reused."""

from __future__ import annotations

import itertools
from pathlib import Path

from omni_agent.agent import TurnRecord
from omni_agent.config import MemoryConfig
from omni_agent.recall import LongTermMemory


async def _filled(tmp_path: Path, budget: int) -> LongTermMemory:
    clock = itertools.count(1_767_225_600, 60)
    ltm = LongTermMemory.open(
        MemoryConfig(path=tmp_path / "robot.db", budget_tokens=budget),
        clock=lambda: float(next(clock)),
        session="s",
    )
    for i in range(30):
        record = TurnRecord(index=i, person="alice", user_text=f"The kettle story, part {i}.")
        record.spoken = f"Tell me more about part {i}."
        await ltm.remember(record)
    return ltm


async def test_the_window_is_excluded_before_the_budget_is_spent(tmp_path: Path) -> None:
    ltm = await _filled(tmp_path, budget=200)
    window = set(range(24, 30))  # the turns the conversation window shows in full
    text = ltm.recall("the kettle story", "alice", window).text
    ltm.close()
    shown = {f"s-{i}-{who}" for i in window for who in ("user", "robot")}
    assert ltm.last_context_ids and not shown & set(ltm.last_context_ids)
    assert "part 29." not in text and "part 23." in text  # the budget went to older turns
    assert len(text.split()) * 1.3 > 200 - 20  # and it was spent, not left empty


async def test_speculative_retrieval_during_speech_is_reused(tmp_path: Path) -> None:
    ltm = await _filled(tmp_path, budget=400)  # room for every turn the window leaves
    calls: list[str] = []
    embed = ltm.memory.embed_query

    def counting(query: str):  # a spy on the real model, not a double
        calls.append(query)
        return embed(query)

    ltm.memory.embed_query = counting  # type: ignore[method-assign]
    await ltm.prepare("the kettle story", "alice", {29})
    assert calls == ["the kettle story"]
    early = ltm.recall("the kettle story", "alice", {29}).text
    assert calls == ["the kettle story"]  # computed once, before the endpoint
    again = ltm.recall("the kettle story", "alice", {28, 29}).text  # the window grew: rebuilt
    assert calls == ["the kettle story"]  # same words: the vector is reused
    assert "part 28" in early and "part 28" not in again
    ltm.close()

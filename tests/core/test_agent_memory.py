"""The agent with long-term memory (a real SQLite file and the real embedding model):
what Alice told the robot in an earlier session is recalled for Alice, not for Bob."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from omni_agent.config import MemoryConfig
from omni_agent.recall import LongTermMemory
from sim.brains.scripted import ScriptedReply, last_user_text


def polite(body: dict[str, Any]) -> ScriptedReply:
    return ScriptedReply(say="Noted, thank you.")


async def settle(harness) -> None:
    await asyncio.gather(*harness.agent._background)


async def test_an_earlier_session_is_recalled_for_the_same_person_only(
    make_harness, tmp_path: Path
) -> None:
    config = MemoryConfig(path=tmp_path / "robot.db", budget_tokens=256)
    day1 = LongTermMemory.open(config, session="day1")
    h = await make_harness(polite)
    h.agent.memory = day1
    await h.say("My keys are in the blue bowl on the hallway shelf.", person="Alice")
    await h.say("I like green tea in the morning.", person="Bob")
    await settle(h)
    day1.close()

    day3 = LongTermMemory.open(config, session="day3")
    h2 = await make_harness(polite)
    h2.agent.memory = day3
    await h2.say("Where did I put my keys?", person="Alice")
    alice_sees = last_user_text(h2.backend.requests[-1])
    await h2.say("Where did I put my keys?", person="Bob")
    bob_sees = last_user_text(h2.backend.requests[-1])
    day3.close()

    assert "[You remember:" in alice_sees and "blue bowl" in alice_sees
    assert "blue bowl" not in bob_sees  # Alice's words are not offered to Bob
    assert "green tea" in bob_sees or "[You remember:" not in bob_sees


async def test_the_conversation_window_is_sent_as_chat_and_not_repeated_as_memory(
    make_harness, tmp_path: Path
) -> None:
    memory = LongTermMemory.open(MemoryConfig(path=tmp_path / "robot.db"), session="s")
    h = await make_harness(polite)
    h.agent.memory = memory
    await h.say("The red cup is mine.")
    await settle(h)
    await h.say("Whose is the red cup?")
    request = h.backend.requests[-1]
    history = [m["content"] for m in request["messages"][1:-1]]
    memory.close()
    assert any("The red cup is mine." in m for m in history)  # the window, as chat
    assert "The red cup is mine." not in last_user_text(request)  # not again as memory


async def test_consolidation_uses_the_model_and_steps_aside_for_a_conversation_turn() -> None:
    from omni_agent.config import ModelConfig
    from omni_agent.model.client import ModelClient
    from omni_agent.recall import ConversationFirst, ModelSummarizer
    from sim.brains.scripted import ScriptedBackend

    backend = ScriptedBackend(
        lambda body: ScriptedReply(say="Alice keeps her keys in the blue bowl."),
        chunk_delay_s=0.01,
    )
    client = ModelClient("http://scripted/v1", ModelConfig(), transport=backend)
    summarize = ModelSummarizer(client, ModelConfig(), quiet_s=0.05)
    assert await summarize("Alice: my keys are in the blue bowl") == (
        "Alice keeps her keys in the blue bowl."
    )
    assert "response_format" not in backend.requests[-1]  # plain text, no actions

    background = asyncio.create_task(summarize("a long log"))
    while client.active_streams == 0:
        await asyncio.sleep(0.005)

    async def a_turn() -> None:
        async for _ in client.stream({"messages": [], "response_format": {}}):
            pass

    turn = asyncio.create_task(a_turn())
    try:
        await background
        raise AssertionError("the summary should have stepped aside")
    except ConversationFirst:
        pass
    await turn  # the turn itself completes normally
    await client.aclose()

"""Preemptive generation: a pause whose words sound finished and that the turn model leans
"done" on starts the turn's reply before the endpoint; the turn uses it only when its final
words are the partial's (same turn, person, memory), and otherwise drops it unheard: no
speech, no motion, no memory of it. The memory is real (SQLite file, the embedding
model); the model server is the scripted double, whose request log shows each call."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from omni_agent.config import MemoryConfig
from omni_agent.messages import PartialTranscript
from omni_agent.recall import LongTermMemory
from omni_agent.transport import USER_PARTIAL
from sim.brains.scripted import ScriptedReply, last_user_text

PAUSE = "Go to the kitchen."
WHOLE = "Go to the kitchen. No, actually, take me to the bedroom."


def words(body: dict[str, Any]) -> str:
    """The person's words in a request (after the situation and memories)."""
    return last_user_text(body).split(":")[-1]


def reply_to(body: dict[str, Any]) -> ScriptedReply:
    if "bedroom" in words(body):
        return ScriptedReply(
            say="Off to the bedroom.", actions=[{"skill": "navigate_to", "place": "bedroom"}]
        )
    if "kitchen" in words(body):
        return ScriptedReply(
            say="Heading to the kitchen now.",
            actions=[{"skill": "navigate_to", "place": "kitchen"}],
        )
    return ScriptedReply(say="Hello.")


@pytest.fixture
async def memory(tmp_path: Path) -> AsyncIterator[LongTermMemory]:
    clock = itertools.count(1_767_225_600, 60)
    ltm = LongTermMemory.open(
        MemoryConfig(path=tmp_path / "robot.db"), clock=lambda: float(next(clock)), session="s"
    )
    yield ltm
    ltm.close()


def pause(text: str, p_done: float | None, turn_id: str = "t1") -> PartialTranscript:
    return PartialTranscript(
        text=text, person="alice", turn_id=turn_id, speech_start=1.0, p_done=p_done
    )


def replies(h: Any) -> list[dict[str, Any]]:
    """The requests for a reply (not the one-token prefill at the start of speech)."""
    return [b for b in h.backend.requests if b.get("max_tokens") != 1]


async def started(h: Any, requests: int) -> None:
    """Until the model has been asked for `requests` replies (the early one went out)."""
    deadline = asyncio.get_running_loop().time() + 10
    while len(replies(h)) < requests:
        assert asyncio.get_running_loop().time() < deadline, "no early request"
        await asyncio.sleep(0.01)


async def test_a_turn_that_ends_as_the_pause_predicted_uses_the_reply_started_there(
    make_harness, memory: LongTermMemory
) -> None:
    h = await make_harness(reply_to)
    h.agent.memory = memory
    h.bus.publish(USER_PARTIAL, pause(PAUSE, p_done=0.8))
    await started(h, 1)
    assert h.speech == [] and h.robot.place != "kitchen"  # unheard, unmoved before the end
    record = await h.say(PAUSE, person="alice", turn_id="t1")
    assert len(h.backend.requests) == 1  # the model was called once
    assert record.trace.preempted and record.trace.recall_ahead == "used"
    assert record.say == "Heading to the kitchen now." and h.robot.place == "kitchen"
    assert h.agent.speculation.early_used == 1
    await h.agent.drain()
    stored = [s.turn.text for s in memory.memory.store.iter_turns()]
    assert PAUSE in stored and "Heading to the kitchen now." in stored


async def test_a_person_who_goes_on_gets_an_answer_to_the_whole_sentence_and_never_the_dropped_one(
    make_harness, memory: LongTermMemory
) -> None:
    h = await make_harness(reply_to, chunk_delay_s=0.05)  # the early reply is still streaming
    h.agent.memory = memory
    h.bus.publish(USER_PARTIAL, pause(PAUSE, p_done=0.8))
    await started(h, 1)
    # the person went on after the pause: the endpoint brings the whole sentence
    record = await h.say(WHOLE, person="alice", turn_id="t1")
    assert len(h.backend.requests) == 2 and words(h.backend.requests[-1]).strip() == f'"{WHOLE}"'
    assert not record.trace.preempted and record.trace.recall_ahead == "the words changed"
    assert record.say == "Off to the bedroom."
    assert h.robot.place == "bedroom"
    assert [r.action["place"] for r in record.executed] == ["bedroom"]
    spoken = " ".join(m.text for m in h.speech)
    assert "kitchen" not in spoken and "bedroom" in spoken
    await h.agent.drain()
    stored = [s.turn.text for s in memory.memory.store.iter_turns()]
    assert WHOLE in stored and "Off to the bedroom." in stored
    assert not any("kitchen now" in t for t in stored)
    assert h.agent.speculation.early_used == 0 and h.agent.speculation.early_replies == 1


async def test_a_pause_that_does_not_lean_done_starts_no_reply(
    make_harness, memory: LongTermMemory
) -> None:
    h = await make_harness(reply_to)
    h.agent.memory = memory
    h.bus.publish(USER_PARTIAL, pause("Go to the", p_done=0.0))  # unfinished words
    h.bus.publish(USER_PARTIAL, pause(PAUSE, p_done=None, turn_id="t2"))  # not judged yet
    h.bus.publish(USER_PARTIAL, pause(PAUSE, p_done=0.3, turn_id="t3"))  # below the bar
    record = await h.say(PAUSE, person="alice", turn_id="t3")
    assert len(h.backend.requests) == 1 and not record.trace.preempted
    assert h.agent.speculation.early_replies == 0
    await h.agent.drain()


async def test_the_bar_is_the_endpointing_sections_and_null_turns_it_off(
    make_harness, memory: LongTermMemory
) -> None:
    h = await make_harness(reply_to)
    h.agent.memory = memory
    h.agent.config.endpointing.preempt_threshold = None
    h.bus.publish(USER_PARTIAL, pause(PAUSE, p_done=0.99))
    record = await h.say(PAUSE, person="alice", turn_id="t1")
    assert not record.trace.preempted and h.agent.speculation.early_replies == 0
    await h.agent.drain()


# ---------------------------------------------------------------- real speech, end to end


@pytest.fixture(scope="module")
def speech_models() -> Any:
    from omni_agent.speech.models import ModelMissingError

    try:
        from omni_agent.speech.asr import WhisperAsr
        from omni_agent.speech.turn import shared_smart_turn
        from omni_agent.speech.voices import PersonVoice

        shared_smart_turn()
        return WhisperAsr(cpu_threads=2), PersonVoice(deterministic=True)
    except ModelMissingError as exc:
        pytest.skip(str(exc))


async def spoken(h: Any, speech_models: Any, parts: list[str]) -> Any:
    """Speak `parts` through the real listener (whisper, Smart Turn), each followed by a
    pause that the turn model hears and keeps open (its bar is out of reach, so only the
    cap ends the turn). The first pause starts an early reply (the agent's bar is set
    below any lean); later ones start none. Returns the turn."""
    from omni_agent.speech.listener import Listener, ListenerConfig
    from omni_agent.speech.turn import TurnConfig
    from omni_agent.speech.vad import VadConfig
    from omni_agent.speech.voices import feed_mic, silence

    asr, person = speech_models
    partials = h.bus.subscribe(USER_PARTIAL)
    vad = VadConfig(turn=TurnConfig(threshold=0.99999, max_wait_ms=1400))
    h.turn_done.clear()
    async with Listener(h.bus, vad, asr, ListenerConfig(person="alice")):
        t = await feed_mic(h.bus, silence(0.3), speed=None, t0=10.0)
        for i, words in enumerate(parts):
            t = await feed_mic(h.bus, person.say(words), speed=None, t0=t)
            t = await feed_mic(h.bus, silence(0.15), speed=None, t0=t)  # the pass starts
            first = await asyncio.wait_for(partials.get(), 60)
            t = await feed_mic(h.bus, silence(0.3), speed=None, t0=t)  # a check: kept open
            judged = first
            while judged.p_done is None:  # the model had not heard the pause yet
                judged = await asyncio.wait_for(partials.get(), 60)
            assert judged.text == first.text and judged.turn_id == first.turn_id
            if i == 0:
                await started(h, 1)  # the early reply for these words went out
                h.agent.config.endpointing.preempt_threshold = None
            assert h.turn_done.is_set() is False and h.speech == []
        await feed_mic(h.bus, silence(1.5), speed=None, t0=t)  # the cap: the endpoint
        await asyncio.wait_for(h.turn_done.wait(), 60)
    return h.agent.turns[-1]


@pytest.mark.speech
async def test_a_spoken_turn_that_ends_at_its_pause_is_answered_by_the_early_reply(
    make_harness, memory: LongTermMemory, speech_models: Any
) -> None:
    h = await make_harness(reply_to)
    h.agent.memory = memory
    h.agent.config.endpointing.preempt_threshold = 0.001  # any lean: the mechanism is tested
    record = await spoken(h, speech_models, ["Please go to the kitchen."])
    assert "kitchen" in record.user_text.lower()
    assert record.trace.preempted and len(replies(h)) == 1
    assert h.robot.place == "kitchen"
    await h.agent.drain()


@pytest.mark.speech
async def test_a_spoken_turn_that_goes_on_after_its_pause_drops_the_early_reply(
    make_harness, memory: LongTermMemory, speech_models: Any
) -> None:
    h = await make_harness(reply_to, chunk_delay_s=0.05)
    h.agent.memory = memory
    h.agent.config.endpointing.preempt_threshold = 0.001
    record = await spoken(h, speech_models, ["Please go to the kitchen.", "No, to the bedroom."])
    assert "bedroom" in record.user_text.lower() and "kitchen" in record.user_text.lower()
    assert not record.trace.preempted and h.agent.speculation.early_replies == 1
    assert len(replies(h)) == 2 and "bedroom" in words(replies(h)[-1])
    assert record.say == "Off to the bedroom." and h.robot.place == "bedroom"
    assert "kitchen now" not in " ".join(m.text for m in h.speech)
    await h.agent.drain()
    stored = [s.turn.text for s in memory.memory.store.iter_turns()]
    assert not any("kitchen now" in t for t in stored) and "Off to the bedroom." in stored

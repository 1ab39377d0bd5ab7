"""Speculative recall: memory retrieval starts on the transcript of a pause, before the
endpoint, and the turn uses that work only when it is the same utterance (turn id) with
the same final words and person. The memory is real (SQLite file, the embedding model);
the model server is the scripted double, whose requests show what the model was given."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from omni_agent.agent import Recollection, TurnRecord
from omni_agent.config import MemoryConfig
from omni_agent.events import Recalled
from omni_agent.messages import PartialTranscript, UserUtterance
from omni_agent.recall import LongTermMemory
from omni_agent.speech.models import ModelMissingError
from omni_agent.transport import USER_PARTIAL, USER_TEXT
from sim.brains.scripted import ScriptedReply

FACTS = [
    ("alice", "My sister Beth lives in Lisbon."),
    ("alice", "I left my keys in the blue bowl by the door."),
    ("bob", "My sister Carla lives in Oslo."),
    ("alice", "The garden needs watering on Sundays."),
    ("bob", "I parked the bike behind the shed."),
]
SISTER = "Where does my sister live?"
KEYS = "Where did I leave my keys?"


def answer(body: dict[str, Any]) -> ScriptedReply:
    return ScriptedReply(say="Let me think.")


@pytest.fixture
async def memory(tmp_path: Path) -> AsyncIterator[LongTermMemory]:
    """Two people's facts among small talk; a budget that holds only what the query needs."""
    clock = itertools.count(1_767_225_600, 3600)
    ltm = LongTermMemory.open(
        MemoryConfig(path=tmp_path / "robot.db", budget_tokens=60),
        clock=lambda: float(next(clock)),
        session="old",
    )
    for i, (who, text) in enumerate(FACTS):
        record = TurnRecord(index=i, person=who, user_text=text, spoken="I will remember that.")
        await ltm.remember(record)
    for i in range(len(FACTS), len(FACTS) + 12):
        record = TurnRecord(index=i, person="alice", user_text=f"Tell me joke number {i}.")
        await ltm.remember(record)
    ltm.session = "now"  # this run's turns are new ones
    ltm.builds = 0
    yield ltm
    ltm.close()


def prepared(ltm: LongTermMemory) -> asyncio.Queue[str]:
    """The words of each speculative recall once its work is over, done or failed (a spy
    on the real memory)."""
    done: asyncio.Queue[str] = asyncio.Queue()
    prepare = ltm.prepare

    async def spied(query: str, person: str | None, skip: set[int]) -> Recollection:
        try:
            return await prepare(query, person, skip)
        finally:
            done.put_nowait(query)

    ltm.prepare = spied  # type: ignore[method-assign]
    return done


async def speculating(make_harness: Any, memory: LongTermMemory) -> tuple[Any, asyncio.Queue[str]]:
    """A harness whose agent recalls from `memory`, and the words of each speculative
    recall it finishes."""
    h = await make_harness(answer)
    h.agent.memory = memory
    return h, prepared(memory)


def last_request_text(h: Any) -> str:
    return str(h.backend.requests[-1]["messages"][-1]["content"])


async def test_a_pause_that_was_the_end_gives_one_context_built_before_the_endpoint(
    make_harness, memory: LongTermMemory
) -> None:
    h, done = await speculating(make_harness, memory)
    h.bus.publish(
        USER_PARTIAL, PartialTranscript(text=SISTER, person="alice", turn_id="t1", speech_start=1.0)
    )
    assert await asyncio.wait_for(done.get(), 10) == SISTER
    assert memory.builds == 1 and not h.backend.requests  # before the endpoint
    record = await h.say(SISTER, person="alice", turn_id="t1")
    assert record.error is None
    assert memory.builds == 1 and h.agent.speculation.hits == 1  # nothing computed at the turn
    assert "Beth lives in Lisbon" in last_request_text(h)
    (recalled,) = [e for e in h.events if isinstance(e, Recalled)]
    assert recalled.prefetched and recalled.query == SISTER and recalled.person == "alice"
    assert "Lisbon" in recalled.text and recalled.items
    await h.agent.drain()


async def test_words_that_changed_after_the_pause_are_recalled_afresh(
    make_harness, memory: LongTermMemory
) -> None:
    h, done = await speculating(make_harness, memory)
    h.bus.publish(
        USER_PARTIAL, PartialTranscript(text=SISTER, person="alice", turn_id="t1", speech_start=1.0)
    )
    await asyncio.wait_for(done.get(), 10)
    await h.say(KEYS, person="alice", turn_id="t1")  # the person went on: new final words
    assert h.agent.speculation.hits == 0 and memory.builds == 2
    assert "blue bowl" in last_request_text(h)  # evidence for the final words
    (recalled,) = [e for e in h.events if isinstance(e, Recalled)]
    assert not recalled.prefetched and recalled.query == KEYS and "blue bowl" in recalled.text
    await h.agent.drain()


async def test_a_partial_for_one_person_is_never_used_for_another(
    make_harness, memory: LongTermMemory
) -> None:
    h, done = await speculating(make_harness, memory)
    h.bus.publish(
        USER_PARTIAL, PartialTranscript(text=SISTER, person="alice", turn_id="t1", speech_start=1.0)
    )
    await asyncio.wait_for(done.get(), 10)
    await h.say(SISTER, person="bob", turn_id="t1")  # the same words, in Bob's voice
    assert h.agent.speculation.hits == 0
    request = last_request_text(h)
    assert "Carla lives in Oslo" in request and "Lisbon" not in request  # Alice's stays hers
    await h.agent.drain()


async def test_the_newest_partial_wins_and_a_failing_one_is_never_fatal(
    make_harness, memory: LongTermMemory
) -> None:
    h, done = await speculating(make_harness, memory)
    calls: list[str] = []
    build = memory._build

    def flaky(query: str, person: str | None, skip: set[int]) -> Any:
        calls.append(query)
        if query == "Where does my":
            raise RuntimeError("the embedding model fell over")
        return build(query, person, skip)

    memory._build = flaky  # type: ignore[method-assign]
    first = PartialTranscript(text="Where does my", turn_id="t1", speech_start=1.0)
    h.bus.publish(USER_PARTIAL, first)
    h.bus.publish(USER_PARTIAL, first.model_copy(update={"text": SISTER, "person": "alice"}))
    assert await asyncio.wait_for(done.get(), 10) == SISTER  # the older one never ran
    record = await h.say(SISTER, person="alice", turn_id="t1")
    assert record.error is None and h.agent.speculation.hits == 1
    h.bus.publish(
        USER_PARTIAL,
        PartialTranscript(text="Where does my", person="alice", turn_id="t2", speech_start=2.0),
    )
    assert await asyncio.wait_for(done.get(), 10) == "Where does my"
    assert calls == [SISTER, "Where does my"]  # it failed, and was only logged
    record = await h.say(SISTER, person="alice", turn_id="t2")  # the turn recalls on its own
    assert record.error is None and h.agent.speculation.hits == 1
    assert "Beth lives in Lisbon" in last_request_text(h)
    await h.agent.drain()


async def test_a_pause_of_another_utterance_is_never_used_even_with_the_same_words(
    make_harness, memory: LongTermMemory
) -> None:
    h, done = await speculating(make_harness, memory)
    h.bus.publish(
        USER_PARTIAL, PartialTranscript(text=SISTER, person="alice", turn_id="t1", speech_start=1.0)
    )
    await asyncio.wait_for(done.get(), 10)
    record = await h.say(SISTER, person="alice", turn_id="t2")  # typed, or a later utterance
    assert record.error is None and h.agent.speculation.hits == 0 and memory.builds == 2
    (recalled,) = [e for e in h.events if isinstance(e, Recalled)]
    assert not recalled.prefetched and "Beth lives in Lisbon" in recalled.text
    await h.agent.drain()


# ---------------------------------------------------------------- real speech, end to end


@pytest.fixture(scope="module")
def speech_models() -> Any:
    try:
        from omni_agent.speech.asr import WhisperAsr
        from omni_agent.speech.voices import PersonVoice

        return WhisperAsr(cpu_threads=2), PersonVoice(deterministic=True)
    except ModelMissingError as exc:
        pytest.skip(str(exc))


@pytest.mark.speech
async def test_a_spoken_question_has_its_memories_ready_when_the_person_stops(
    make_harness, memory: LongTermMemory, speech_models: Any
) -> None:
    from omni_agent.speech.listener import Listener, ListenerConfig
    from omni_agent.speech.vad import VadConfig
    from omni_agent.speech.voices import feed_mic, silence

    asr, person = speech_models
    h, done = await speculating(make_harness, memory)
    partials, finals = h.bus.subscribe(USER_PARTIAL), h.bus.subscribe(USER_TEXT)
    async with Listener(h.bus, VadConfig(), asr, ListenerConfig(person="alice")):
        t = await feed_mic(h.bus, silence(0.3) + person.say(SISTER), speed=None, t0=10.0)
        t = await feed_mic(h.bus, silence(0.15), speed=None, t0=t)  # a pause, not yet the end
        partial = await asyncio.wait_for(partials.get(), 60)
        await asyncio.wait_for(done.get(), 10)
        assert finals.get_nowait() is None and memory.builds == 1  # still before the endpoint
        h.turn_done.clear()
        await feed_mic(h.bus, silence(0.5), speed=None, t0=t)  # the endpoint
        final: UserUtterance = await asyncio.wait_for(finals.get(), 60)
        await asyncio.wait_for(h.turn_done.wait(), 30)
    assert partial.person == "alice" and final.text == partial.text
    assert "sister" in final.text.lower()
    assert memory.builds == 1 and h.agent.speculation.hits == 1
    assert "Beth lives in Lisbon" in last_request_text(h)
    await h.agent.drain()


async def test_a_partial_that_arrives_after_its_turn_began_costs_nothing(
    make_harness, memory: LongTermMemory
) -> None:
    h, done = await speculating(make_harness, memory)
    record = await h.say(KEYS, person="alice")
    assert memory.builds == 1
    # late: the turn for these words has recalled already; then a new utterance's pause
    late = PartialTranscript(text=KEYS, person="alice", turn_id=record.turn_id, speech_start=1.0)
    h.bus.publish(USER_PARTIAL, late)
    for _ in range(5):  # let the agent take the late partial on its own (loop turns, no time)
        await asyncio.sleep(0)
    h.bus.publish(
        USER_PARTIAL, PartialTranscript(text=SISTER, person="alice", turn_id="t2", speech_start=9.0)
    )
    assert await asyncio.wait_for(done.get(), 10) == SISTER  # the late one was skipped
    assert done.empty() and memory.builds == 2
    await h.agent.drain()

"""Turns the model hears itself (audio-input backends): the request carries the audio AND
a text part with the situation and the remembered evidence; the transcript that follows
the audio is the retrieval query and the text stored in memory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from omni_agent.agent import Recollection, TurnRecord
from omni_agent.media import wav_bytes
from omni_agent.messages import UserUtterance
from omni_agent.model.profiles import PROFILES
from omni_agent.prompt import HEARD
from omni_agent.transport import USER_TEXT, USER_TRANSCRIPT
from sim.brains.scripted import ScriptedReply

AUDIO_PROFILES = sorted(name for name, p in PROFILES.items() if p.audio_in)
EVIDENCE = "[2 days ago] Alice: My sister Beth lives in Lisbon."


class RecordingMemory:
    def __init__(self) -> None:
        self.queries: list[str] = []
        self.stored: list[TurnRecord] = []
        self.written = asyncio.Event()

    def recall(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        self.queries.append(query)
        item = {"kind": "evidence", "turn_id": "t1", "text": EVIDENCE, "score": 0.9, "reason": "x"}
        return Recollection(EVIDENCE, (item,))

    async def remember(self, record: TurnRecord) -> None:
        self.stored.append(record)
        self.written.set()


def answer(body: dict[str, Any]) -> ScriptedReply:
    return ScriptedReply(say="Your sister lives in Lisbon.")


def last_user_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    content = body["messages"][-1]["content"]
    assert isinstance(content, list), "an audio-input backend takes list-of-parts content"
    return content


@pytest.mark.parametrize("profile", AUDIO_PROFILES)
async def test_memory_reaches_a_model_that_hears_beside_the_audio(make_harness, profile) -> None:
    h = await make_harness(answer, profile=profile)
    memory = RecordingMemory()
    h.agent.memory = memory
    audio = wav_bytes(b"\x00\x01" * 8000, 16_000)
    utterance = UserUtterance(person="Alice", audio_wav=audio, speech_end=123.0)
    # the listener's order: the audio at the endpoint, the transcript right after it
    h.bus.publish(USER_TEXT, utterance)
    h.bus.publish(
        USER_TRANSCRIPT,
        utterance.model_copy(update={"text": "Where does my sister live?"}),
    )
    await asyncio.wait_for(h.turn_done.wait(), 5)
    parts = last_user_parts(h.backend.requests[-1])
    kinds = [p["type"] for p in parts]
    assert "input_audio" in kinds and kinds[-1] == "text"
    text = parts[-1]["text"]
    assert EVIDENCE in text  # what was remembered
    assert f"Alice {HEARD}" in text  # who speaks; the words themselves are in the audio
    assert "Where does my sister live?" not in text
    assert memory.queries == ["Where does my sister live?"]
    await asyncio.wait_for(memory.written.wait(), 5)
    assert memory.stored[0].user_text == "Where does my sister live?"
    assert memory.stored[0].heard
    # the window keeps the turn as text, so later requests still show what was said
    await h.say("And my brother?")
    history = [m["content"] for m in h.backend.requests[-1]["messages"]]
    assert any(isinstance(c, str) and "Where does my sister live?" in c for c in history), history


async def test_a_late_transcript_still_becomes_the_stored_text(make_harness) -> None:
    h = await make_harness(answer, profile="vllm-omni-thinker")
    h.agent.config.memory.transcript_wait_s = 0.0
    memory = RecordingMemory()
    h.agent.memory = memory
    utterance = UserUtterance(
        person="Alice", audio_wav=wav_bytes(b"\x00\x01" * 800, 16_000), speech_end=7.0
    )
    h.bus.publish(USER_TEXT, utterance)
    await asyncio.wait_for(h.turn_done.wait(), 5)
    assert memory.queries == [""]  # went ahead without it
    h.bus.publish(USER_TRANSCRIPT, utterance.model_copy(update={"text": "Good morning"}))
    await asyncio.wait_for(memory.written.wait(), 5)
    assert memory.stored[0].user_text == "Good morning"


async def test_a_text_backend_gets_the_transcript_quoted_and_no_audio(make_harness) -> None:
    h = await make_harness(answer, profile="llama-cpp")
    h.agent.memory = RecordingMemory()
    utterance = UserUtterance(
        text="Where does my sister live?",
        person="Alice",
        audio_wav=wav_bytes(b"\x00\x01" * 800, 16_000),
    )
    h.bus.publish(USER_TEXT, utterance)
    await asyncio.wait_for(h.turn_done.wait(), 5)
    content = h.backend.requests[-1]["messages"][-1]["content"]
    assert isinstance(content, str)
    assert 'Alice says: "Where does my sister live?"' in content and EVIDENCE in content


async def test_a_backend_that_speaks_gives_the_robot_text_by_its_own_transcript(
    make_harness,
) -> None:
    def speaks(body: dict[str, Any]) -> ScriptedReply:
        return ScriptedReply(
            say="Your sister lives in Lisbon.",
            audio_pcm=b"\x00\x00" * 2400,
            audio_transcript="Your sister Beth lives in Lisbon.",
        )

    h = await make_harness(speaks, profile="vllm-omni")
    memory = RecordingMemory()
    h.agent.memory = memory
    record = await h.say("Where does my sister live?")
    assert record.say == "Your sister lives in Lisbon."
    assert record.spoken == "Your sister Beth lives in Lisbon."
    robot_lines = [e.data["text"] for e in h.events if e.kind == "robot"]
    assert robot_lines == ["Your sister Beth lives in Lisbon."]
    await asyncio.wait_for(memory.written.wait(), 5)
    assert memory.stored[0].spoken == "Your sister Beth lives in Lisbon."


async def test_a_lone_surrogate_in_what_a_person_typed_never_breaks_a_turn(make_harness) -> None:
    h = await make_harness(answer)
    record = await h.say("Where is my \udc00 sister?")
    assert record.error is None and record.say
    assert "\ufffd" in record.user_text
    assert (await h.say("Hello again")).error is None

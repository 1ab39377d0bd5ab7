"""The simulated voice never loses the end of a reply: `end_input()` that lands while a
word is being spoken still ends the utterance (it once hung until the runner's limit)."""

from __future__ import annotations

import asyncio

import pytest

from omni_agent.transport import Bus
from sim.clock import SimClock
from sim.speaking import SimSpeechOutput


class GatedClock(SimClock):
    """A sim clock whose sleeps wait for the test: each word is spoken only when released,
    so the test decides exactly what happens while a word is being spoken."""

    def __init__(self) -> None:
        super().__init__()
        self.speaking = asyncio.Event()
        self.go_on = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        self.speaking.set()
        await self.go_on.wait()


@pytest.mark.parametrize("rest", ["world", ""])
async def test_end_of_input_during_a_word_ends_the_utterance(rest: str) -> None:
    clock = GatedClock()
    handle = SimSpeechOutput(Bus(), clock).start()
    handle.push_text("Hello " + rest)  # "Hello" can be spoken, the rest may be half a word
    await clock.speaking.wait()  # the first word is being spoken now
    handle.end_input()  # ... and the input ends in the middle of it
    clock.go_on.set()
    await asyncio.wait_for(handle.wait_for_playout(), 10)
    assert handle.spoken_text == ("Hello " + rest).strip()
    assert not handle.interrupted


async def test_text_that_arrives_during_a_word_is_spoken_too() -> None:
    clock = GatedClock()
    handle = SimSpeechOutput(Bus(), clock).start()
    handle.push_text("Hello ")
    await clock.speaking.wait()
    handle.push_text("there friend")
    handle.end_input()
    clock.go_on.set()
    await asyncio.wait_for(handle.wait_for_playout(), 10)
    assert handle.spoken_text == "Hello there friend"

"""A heard turn is paired with its words by turn id, whatever the order of arrival.

For a backend that hears the audio, each utterance leaves the listener at the endpoint
without text; its partial transcripts (at pauses) and its final transcript travel on
other topics and may come before it, after it, after the turn, or never. Hypothesis
shuffles all of them into the real agent loop (scripted model double, simulated robot)
and checks that every turn gets exactly its own words or none, never another turn's: as
its retrieval query, as a context prepared during speech, and as the text stored in
memory.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omni_agent.agent import Agent, Recollection, TurnRecord
from omni_agent.config import Config
from omni_agent.events import AgentEvent, Recalled, TurnEnded
from omni_agent.media import wav_bytes
from omni_agent.messages import PartialTranscript, UserUtterance
from omni_agent.model.client import ModelClient
from omni_agent.model.profiles import get_profile
from omni_agent.transport import USER_PARTIAL, USER_TEXT, USER_TRANSCRIPT, Bus
from sim.brains.scripted import ScriptedBackend, ScriptedReply
from sim.robot import SimRobot
from sim.world import World

WORDS = ["Where are my keys?", "Bring me the red cup.", "What time is it?", "Hello robot."]
AUDIO = wav_bytes(b"\x00\x01" * 1600, 16_000)
DEADLINE_S = 30.0  # generous: the machine may be loaded; a pass never waits this long


class PairingMemory:
    """Memory that records what each turn asked for and stored; a context prepared during
    speech says which words it was prepared for."""

    def __init__(self, changed: asyncio.Event) -> None:
        self.changed = changed
        self.stored: list[TurnRecord] = []

    def recall(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        return Recollection(f"recalled for {query!r}")

    async def prepare(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        return Recollection(f"prepared for {query!r}")

    def revision(self) -> int:
        return len(self.stored)

    async def remember(self, record: TurnRecord) -> None:
        self.stored.append(record)
        self.changed.set()


@dataclass
class Turn:
    turn_id: str
    words: str
    transcript: bool
    """Whether its final transcript is ever published."""
    partials: list[str] = field(default_factory=list)
    """The words of each of its pauses (perhaps another turn's words: people repeat)."""


@st.composite
def scenarios(draw: Any) -> tuple[list[Turn], list[tuple[str, int, str]], list[int]]:
    n = draw(st.integers(1, len(WORDS)))
    words = draw(st.permutations(WORDS))[:n]
    turns = [
        Turn(
            f"turn-{i}",
            words[i],
            draw(st.booleans()),
            draw(st.lists(st.sampled_from([*words, words[i][:6]]), max_size=2)),
        )
        for i in range(n)
    ]
    messages = [("utterance", i, "") for i in range(n)]
    messages += [("transcript", i, t.words) for i, t in enumerate(turns) if t.transcript]
    messages += [("partial", i, text) for i, t in enumerate(turns) for text in t.partials]
    order = draw(st.permutations(messages))
    gaps = draw(st.lists(st.integers(0, 4), min_size=len(order), max_size=len(order)))
    return turns, order, gaps


async def until(changed: asyncio.Event, condition: Any) -> None:
    async def wait() -> None:
        while not condition():
            changed.clear()
            await changed.wait()

    await asyncio.wait_for(wait(), DEADLINE_S)


async def play(turns: list[Turn], order: list[tuple[str, int, str]], gaps: list[int]) -> None:
    bus, world = Bus(), World.load()
    config = Config()
    config.memory.transcript_wait_s = 0.02  # a turn goes ahead without a late transcript
    backend = ScriptedBackend(lambda body: ScriptedReply(say="Right."))
    client = ModelClient("http://scripted/v1", config.model, transport=backend)
    changed = asyncio.Event()
    events: list[AgentEvent] = []

    def observe(event: AgentEvent) -> None:
        events.append(event)
        changed.set()

    memory = PairingMemory(changed)
    agent = Agent(
        config, bus, SimRobot(world, bus), client, get_profile("vllm-omni-thinker"),
        memory=memory, site=world.site_map(), on_event=observe,
    )  # fmt: skip
    serving = asyncio.create_task(agent.run())
    await agent.ready.wait()
    for (kind, i, text), gap in zip(order, gaps, strict=True):
        turn = turns[i]
        if kind == "utterance":
            msg = UserUtterance(person="Alice", audio_wav=AUDIO, turn_id=turn.turn_id)
            bus.publish(USER_TEXT, msg)
        elif kind == "transcript":
            msg = UserUtterance(person="Alice", text=text, audio_wav=AUDIO, turn_id=turn.turn_id)
            bus.publish(USER_TRANSCRIPT, msg)
        else:
            partial = PartialTranscript(
                text=text, person="Alice", turn_id=turn.turn_id, speech_start=float(i)
            )
            bus.publish(USER_PARTIAL, partial)
        for _ in range(gap):  # let the agent take some of it before the next message
            await asyncio.sleep(0)
    ended = lambda: sum(isinstance(e, TurnEnded) for e in events) == len(turns)  # noqa: E731
    await until(changed, ended)
    with_transcript = {t.turn_id for t in turns if t.transcript}
    await until(changed, lambda: with_transcript <= {r.turn_id for r in memory.stored})
    serving.cancel()  # no more transcripts: the other memory writes go ahead without one
    await asyncio.gather(serving, return_exceptions=True)
    await asyncio.wait_for(agent.drain(), DEADLINE_S)

    by_id = {t.turn_id: t for t in turns}
    assert Counter(r.turn_id for r in memory.stored) == Counter(list(by_id))  # each once
    for record in memory.stored:
        own = by_id[record.turn_id]
        assert record.user_text in (own.words, ""), (record.turn_id, record.user_text)
        if own.transcript:
            assert record.user_text == own.words
    index_to_id = {r.index: r.turn_id for r in agent.turns}
    offered = {(turns[i].turn_id, text) for kind, i, text in order if kind == "partial"}
    for recalled in (e for e in events if isinstance(e, Recalled)):
        own = by_id[index_to_id[recalled.index]]
        assert recalled.query in (own.words, ""), (own.turn_id, recalled.query)
        if recalled.prefetched:  # prepared on a pause of this very utterance
            assert (own.turn_id, recalled.query) in offered
            assert recalled.text == f"prepared for {recalled.query!r}"


@settings(
    max_examples=int(os.environ.get("PAIRINGS", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(scenarios())
def test_every_turn_gets_its_own_words_or_none(
    scenario: tuple[list[Turn], list[tuple[str, int, str]], list[int]],
) -> None:
    asyncio.run(play(*scenario))

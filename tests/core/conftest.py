"""A harness that runs the real agent loop against the simulated robot and the scripted
test double of a model server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from omni_agent.agent import Agent, TurnRecord
from omni_agent.config import Config
from omni_agent.events import AgentEvent, TurnEnded
from omni_agent.messages import SpeechText, UserUtterance
from omni_agent.model.client import ModelClient
from omni_agent.model.profiles import get_profile
from omni_agent.speech.handle import SpeechHandle, TextSpeechOutput
from omni_agent.state import State
from omni_agent.transport import SPEECH_TEXT, USER_TEXT, Bus
from sim.brains.scripted import Script, ScriptedBackend
from sim.robot import SimRobot
from sim.world import World


@dataclass
class Harness:
    agent: Agent
    backend: ScriptedBackend
    robot: SimRobot
    bus: Bus
    events: list[AgentEvent] = field(default_factory=list)
    speech: list[SpeechText] = field(default_factory=list)
    turn_done: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on every agent event: what `until` waits on."""

    async def say(self, text: str, person: str = "Alice", turn_id: str | None = None) -> TurnRecord:
        """Type `text` (as the utterance `turn_id`, when its partials were sent before)."""
        self.turn_done.clear()
        count = len(self.agent.turns)
        utterance = UserUtterance(text=text, person=person)
        if turn_id is not None:
            utterance = utterance.model_copy(update={"turn_id": turn_id})
        self.bus.publish(USER_TEXT, utterance)
        await asyncio.wait_for(self.turn_done.wait(), 5)
        assert len(self.agent.turns) == count + 1
        return self.agent.turns[-1]

    def kinds(self, kind: str) -> list[AgentEvent]:
        return [e for e in self.events if e.kind == kind]

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait, event by event, until `condition` holds (TimeoutError after `timeout`)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            self.changed.clear()
            left = deadline - asyncio.get_running_loop().time()
            await asyncio.wait_for(self.changed.wait(), max(left, 0))

    async def until_state(self, state: State, timeout: float = 5.0) -> None:
        await self.until(lambda: self.agent.machine.state == state, timeout)


class SignallingTextOutput(TextSpeechOutput):
    """The text-only speech output, also waking `Harness.until` whenever words are spoken."""

    def __init__(self, bus: Bus, changed: asyncio.Event) -> None:
        super().__init__(bus)
        self._changed = changed

    def start(self) -> SpeechHandle:
        handle = super().start()
        mark = handle._mark_spoken

        def marked(text: str) -> None:
            mark(text)
            self._changed.set()

        handle._mark_spoken = marked  # type: ignore[method-assign]
        return handle


HarnessFactory = Callable[..., "asyncio.Future[Harness]"]


@pytest.fixture
async def make_harness() -> AsyncIterator[Callable[..., object]]:
    tasks: list[asyncio.Task[None]] = []

    async def make(script: Script, profile: str = "llama-cpp", **backend_kw: float) -> Harness:
        world = World.load()
        bus = Bus()
        robot = SimRobot(world, bus)
        backend = ScriptedBackend(script, **backend_kw)
        config = Config()
        config.model.backoff_s = 0.01
        client = ModelClient("http://scripted/v1", config.model, transport=backend)
        harness = Harness(None, backend, robot, bus)  # type: ignore[arg-type]

        def observe(event: AgentEvent) -> None:
            harness.events.append(event)
            harness.changed.set()
            if isinstance(event, TurnEnded):
                harness.turn_done.set()

        harness.agent = Agent(
            config, bus, robot, client, get_profile(profile),
            speech=SignallingTextOutput(bus, harness.changed),
            site=world.site_map(), on_event=observe,
        )  # fmt: skip
        speech = bus.subscribe(SPEECH_TEXT)

        async def drain() -> None:
            async for msg in speech:
                harness.speech.append(msg)
                harness.changed.set()

        tasks.append(asyncio.create_task(harness.agent.run()))
        tasks.append(asyncio.create_task(drain()))
        await harness.agent.ready.wait()
        return harness

    yield make
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

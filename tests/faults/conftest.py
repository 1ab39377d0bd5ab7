"""A drill that runs the real agent loop, on the simulated robot, against the hostile
model server double on 127.0.0.1, with timeouts small enough for many cases a second."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from bench.hostile import HostileServer
from omni_agent.agent import Agent, TurnRecord
from omni_agent.config import Config, ModelConfig
from omni_agent.events import AgentEvent
from omni_agent.messages import StateChange, UserUtterance
from omni_agent.model.client import ModelClient
from omni_agent.model.profiles import get_profile
from omni_agent.state import State
from omni_agent.transport import STATE, Bus, Subscription
from sim.robot import SimRobot
from sim.world import World

FAULT_MODEL = ModelConfig(
    connect_timeout_s=0.5,
    first_token_timeout_s=0.5,
    total_timeout_s=1.0,
    retries=1,
    backoff_s=0.01,
    recovery_poll_s=0.01,
)
HANG_S = FAULT_MODEL.total_timeout_s + 10
"""A turn still running this long after its deadline hangs: the test fails, never waits on."""


@dataclass
class Drill:
    server: HostileServer
    agent: Agent
    robot: SimRobot
    states: Subscription[StateChange]
    visited: list[str] = field(default_factory=list)
    """Every state the agent entered, in order."""

    async def turn(self, text: str = "Please stop where you are.") -> TurnRecord:
        reply = self.agent.respond(UserUtterance(text=text, person="Alice"))
        record = await asyncio.wait_for(reply, HANG_S)
        assert record is not None, f"turn not started in {self.agent.machine.state}"
        return record

    async def until(self, state: State) -> None:
        async def wait() -> None:
            while self.agent.machine.state != state:
                await self.states.get()

        await asyncio.wait_for(wait(), HANG_S)


MakeDrill = Callable[[str], Awaitable[Drill]]


@pytest.fixture
async def hostile() -> AsyncIterator[HostileServer]:
    async with HostileServer(drip_s=0.05) as server:
        yield server


@pytest.fixture
async def make_drill(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MakeDrill]:
    clients: list[ModelClient] = []

    async def make(profile: str) -> Drill:
        world = World.load()
        bus = Bus()
        robot = SimRobot(world, bus)
        config = Config()
        config.model = FAULT_MODEL.model_copy(update={"profile": profile})
        client = ModelClient(hostile.url, config.model)
        clients.append(client)
        visited: list[str] = []

        def observe(event: AgentEvent) -> None:
            if event.kind == "state":
                visited.append(str(event.data["dest"]))

        agent = Agent(
            config, bus, robot, client, get_profile(profile),
            site=world.site_map(), on_event=observe,
        )  # fmt: skip
        return Drill(hostile, agent, robot, bus.subscribe(STATE), visited)

    yield make
    for client in clients:
        await client.aclose()

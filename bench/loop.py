"""`omni-agent bench loop`: the controller's own cost per turn.

Runs many turns of the real agent loop (bus, state machine, request building, streaming
parse, action validation, simulated robot) against an instant scripted backend, so nearly
all of the measured time is the controller's. Side by side, the baseline is the bare
model client streaming the same replies with no agent around it.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from omni_agent.agent import Agent
from omni_agent.brain import Brain
from omni_agent.config import Config
from omni_agent.events import AgentEvent
from omni_agent.messages import UserUtterance
from omni_agent.model.client import ModelClient
from omni_agent.model.profiles import get_profile
from omni_agent.model.reply import ReplyAssembler
from omni_agent.runtime import build_agent
from omni_agent.transport import USER_TEXT, Bus
from sim.brains.scripted import ScriptedBackend, ScriptedReply
from sim.robot import SimRobot
from sim.world import World

PLACES = ["kitchen", "bedroom", "living room", "hallway"]


def _script(body: dict[str, Any]) -> ScriptedReply:
    n = len(body["messages"])
    place = PLACES[n % len(PLACES)]
    return ScriptedReply(
        say=f"Sure, I am going to the {place} now.",
        actions=[{"skill": "navigate_to", "place": place}],
    )


def _stats(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "median": round(statistics.median(ordered), 4),
        "p99": round(p99, 4),
        "mean": round(statistics.fmean(ordered), 4),
        "max": round(ordered[-1], 4),
    }


async def _baseline(config: Config, turns: int) -> list[float]:
    backend = ScriptedBackend(_script)
    client = ModelClient("http://scripted/v1", config.model, transport=backend)
    body = {"messages": [{"role": "user", "content": "go"}], "response_format": {}}
    times = []
    for _ in range(turns):
        start = time.perf_counter()
        assembler = ReplyAssembler("json_schema")
        async for event in client.stream(body):
            assembler.feed(event)
        assembler.finish()
        times.append((time.perf_counter() - start) * 1000)
    await client.aclose()
    return times


async def run_loop_bench(config: Config, turns: int, out: Path) -> dict[str, Any]:
    world = World.load()
    bus = Bus()
    robot = SimRobot(world, bus)
    backend = ScriptedBackend(_script)
    client = ModelClient("http://scripted/v1", config.model, transport=backend)
    done = asyncio.Event()

    def on_event(event: AgentEvent) -> None:
        if event.kind == "turn":
            done.set()

    brain = Brain(client, get_profile("llama-cpp"), "scripted")
    agent = build_agent(config, bus, robot, brain, site=world.site_map(), on_event=on_event)
    task = asyncio.create_task(agent.run())
    await agent.ready.wait()
    overhead, model = [], []
    for i in range(turns + 10):
        done.clear()
        model_before = backend.model_time_s
        start = time.perf_counter()
        bus.publish(USER_TEXT, UserUtterance(text=f"Please go somewhere ({i}).", person="Alice"))
        await done.wait()
        total_ms = (time.perf_counter() - start) * 1000
        model_ms = (backend.model_time_s - model_before) * 1000
        if i >= 10:  # the first turns warm caches and imports
            overhead.append(total_ms - model_ms)
            model.append(model_ms)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.aclose()
    baseline = await _baseline(config, turns)
    failed = sum(1 for t in agent.turns if t.error or t.rejected)
    report = {
        "turns": turns,
        "failed_turns": failed,
        "overhead_ms": _stats(overhead),
        "model_ms": _stats(model),
        "baseline_client_only_ms": _stats(baseline),
        "ratio_median_vs_client_only": round(
            statistics.median(overhead) / statistics.median(baseline), 2
        ),
        "stage_medians_ms": {
            stage: round(statistics.median(v), 3) for stage, v in _stage_values(agent).items()
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report


def _stage_values(agent: Agent) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {}
    for turn in agent.turns[10:]:
        for name, value in turn.trace.stages_ms().items():
            stages.setdefault(name, []).append(value)
    return stages

"""Runs a scenario: the real agent loop against the simulated robot and world.

Scripted lines go in through the same topic a ROS node or the speech listener uses, and
each one waits for the agent's finished turn before the next is said.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from omni_agent.agent import Agent, TurnMemory, TurnRecord
from omni_agent.brain import Brain
from omni_agent.config import Config
from omni_agent.events import AgentEvent, EpisodeLog, EventSink
from omni_agent.messages import UserUtterance
from omni_agent.transport import USER_TEXT, Bus
from sim.robot import SimRobot
from sim.scenario import ActionExecuted, NoMotion, ReplyMentions, RobotEndsIn, Scenario
from sim.voice import SimVoice
from sim.world import World

LINE_TIMEOUT_S = 120.0

MOTION_SKILLS = {"move", "navigate_to", "turn", "look_at"}


@dataclass
class Check:
    description: str
    passed: bool
    detail: str = ""


@dataclass
class EpisodeResult:
    scenario: str
    turns: list[TurnRecord]
    checks: list[Check]
    violations: list[str]
    final_place: str | None
    log_path: Path | None = None
    events: list[AgentEvent] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and not self.violations

    def latency_medians_ms(self) -> dict[str, float]:
        stages: dict[str, list[float]] = {}
        for turn in self.turns:
            for name, value in turn.trace.stages_ms().items():
                stages.setdefault(name, []).append(value)
        return {name: round(statistics.median(v), 1) for name, v in stages.items()}


def check_expectations(scenario: Scenario, turns: list[TurnRecord], robot: SimRobot) -> list[Check]:
    checks = []
    for exp in scenario.expect:
        chosen = [t for t in turns if exp.turn is None or t.index == exp.turn - 1]
        passed, detail = False, ""
        if isinstance(exp, RobotEndsIn):
            passed = (robot.place or "").lower() == exp.place.lower()
            detail = f"robot is at {robot.place or 'an unnamed spot'}"
        elif isinstance(exp, ReplyMentions):
            said = " ".join(t.say for t in chosen)
            passed = any(w.lower() in said.lower() for w in exp.any_of)
            detail = f"said {said[:80]!r}"
        elif isinstance(exp, ActionExecuted):
            skills = [r.action.get("skill") for t in chosen for r in t.executed if r.ok]
            passed = exp.skill in skills
            detail = f"executed {skills or 'nothing'}"
        elif isinstance(exp, NoMotion):
            moved = [
                r.action.get("skill")
                for t in chosen
                for r in t.executed
                if r.action.get("skill") in MOTION_SKILLS
            ]
            passed = not moved
            detail = f"moved with {moved}" if moved else "stayed put"
        checks.append(Check(exp.describe(), passed, detail))
    return checks


async def run_episode(
    config: Config,
    scenario: Scenario,
    brain: Brain,
    *,
    log_path: Path | None = None,
    on_event: EventSink | None = None,
    memory: TurnMemory | None = None,
    voice: SimVoice | None = None,
    bus: Bus | None = None,
) -> EpisodeResult:
    """Play the scenario's lines to the agent (as text, or spoken when `voice` is given;
    then `bus` must be the bus the voice stack listens on)."""
    world = World.load(scenario.world) if scenario.world else World.load()
    bus = bus or Bus()
    robot = SimRobot(world, bus, world.places[scenario.start] if scenario.start else None)
    events: list[AgentEvent] = []
    turn_done = asyncio.Event()
    episode_log = EpisodeLog(log_path) if log_path else None

    def observe(event: AgentEvent) -> None:
        events.append(event)
        if episode_log is not None:
            episode_log(event)
        if on_event is not None:
            on_event(event)
        if event.kind == "turn" or (event.kind == "note" and "ignored while" in event.data["text"]):
            turn_done.set()

    agent = Agent(
        config,
        bus,
        robot,
        brain.client,
        brain.profile,
        memory=memory,
        site=world.site_map(),
        on_event=observe,
        speech=voice.output if voice else None,
    )
    loop_task = asyncio.create_task(agent.run())
    try:
        await agent.ready.wait()
        await agent.warm_up()
        for line in scenario.lines:
            turn_done.clear()
            person = line.person or scenario.person
            if voice is not None:
                speaking = voice.say(bus, line.text, person, turn_done)
                await asyncio.wait_for(speaking, LINE_TIMEOUT_S)
            else:
                bus.publish(USER_TEXT, UserUtterance(text=line.text, person=person))
                await asyncio.wait_for(turn_done.wait(), LINE_TIMEOUT_S)
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
        if episode_log is not None:
            episode_log.close()
    return EpisodeResult(
        scenario=scenario.name,
        turns=agent.turns,
        checks=check_expectations(scenario, agent.turns, robot),
        violations=robot.violations,
        final_place=robot.place,
        log_path=log_path,
        events=events,
    )

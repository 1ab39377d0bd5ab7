"""Runs a scenario: the real agent loop against the simulated robot and world.

Scripted lines go in through the same topic a ROS node or the speech listener uses, and
each one waits for the agent's finished turn before the next is said. Time in the world
(driving, talking, pauses, the days between sessions) passes on a simulated clock; each
session is a fresh conversation (a new agent) over the same long-term memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from omni_agent.agent import Agent, Recollection, TurnMemory, TurnRecord
from omni_agent.brain import Brain
from omni_agent.config import Config
from omni_agent.events import AgentEvent, EpisodeLog, EventSink, SimEvent
from omni_agent.messages import UserUtterance, VoiceActivity
from omni_agent.runtime import DRAIN_TIMEOUT_S, build_agent
from omni_agent.speech.handle import SpeechOutput
from omni_agent.transport import USER_TEXT, VOICE, Bus
from sim.clock import SimClock
from sim.robot import SimRobot
from sim.scenario import (
    ActionExecuted,
    ActionRejected,
    Expectation,
    Line,
    NoMotion,
    NoViolation,
    ReplyAvoids,
    ReplyMentions,
    RobotEndsIn,
    RobotNotIn,
    Scenario,
    StateVisited,
    TurnAnswered,
    TurnInterrupted,
)
from sim.speaking import SimSpeechOutput
from sim.voice import LEAD_IN_S, SimVoice
from sim.world import World

LINE_TIMEOUT_S = 120.0
RECOVERY_TIMEOUT_S = 60.0

MOTION_SKILLS = {"move", "navigate_to", "turn", "look_at"}


@runtime_checkable
class EpisodeWatcher(Protocol):
    """A sink that also watches the robot, its bus and the clock (recordings, views).

    Sinks are made before the episode, often by a caller that never sees the robot (the
    library builds it per episode), so the runner hands it over once it exists."""

    def attach(self, robot: SimRobot, clock: SimClock) -> None: ...


@dataclass
class Check:
    description: str
    passed: bool
    detail: str = ""
    memory_probe: bool = False


@dataclass
class EpisodeResult:
    scenario: str
    turns: list[TurnRecord]
    checks: list[Check]
    violations: list[str]
    final_place: str | None
    log_path: Path | None = None
    events: list[AgentEvent] = field(default_factory=list)
    line_turns: list[TurnRecord | None] = field(default_factory=list)
    """The turn that answered each scenario line (None: the robot could not take it)."""
    event_times: list[float] = field(default_factory=list)
    """Simulated time (s since day 1, 09:00) of each event in `events`."""
    sim_s: float = 0.0
    """Simulated seconds the episode took, the jumps between days left out."""
    days: int = 1
    wall_s: float = 0.0
    states: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and not self.violations

    @property
    def expectations_met(self) -> tuple[int, int]:
        return sum(c.passed for c in self.checks), len(self.checks)

    @property
    def memory_probes(self) -> tuple[int, int]:
        probes = [c for c in self.checks if c.memory_probe]
        return sum(c.passed for c in probes), len(probes)

    def latency_medians_ms(self) -> dict[str, float]:
        stages: dict[str, list[float]] = {}
        for turn in self.turns:
            for name, value in turn.trace.stages_ms().items():
                stages.setdefault(name, []).append(value)
        return {name: round(statistics.median(v), 1) for name, v in stages.items()}

    def latency_stats_ms(self, stage: str = "done") -> dict[str, float]:
        values = sorted(v for t in self.turns if (v := t.trace.stages_ms().get(stage)) is not None)
        if not values:
            return {}
        p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
        return {"median": round(statistics.median(values), 1), "p90": p90, "max": values[-1]}


def check_expectations(
    scenario: Scenario,
    turns: list[TurnRecord],
    robot: SimRobot,
    line_turns: list[TurnRecord | None] | None = None,
    states: list[str] | None = None,
) -> list[Check]:
    """`line_turns` maps lines to turns; without it turn N is the Nth turn (one session)."""
    by_line: list[TurnRecord | None] = list(line_turns if line_turns is not None else turns)
    return [_check(exp, turns, by_line, robot, states or []) for exp in scenario.expect]


def _check(
    exp: Expectation,
    turns: list[TurnRecord],
    by_line: list[TurnRecord | None],
    robot: SimRobot,
    states: list[str],
) -> Check:
    if exp.turn is None:
        chosen = turns
    else:
        picked = by_line[exp.turn - 1] if exp.turn - 1 < len(by_line) else None
        chosen = [picked] if picked is not None else []
    passed, detail = False, ""
    if isinstance(exp, RobotEndsIn):
        passed = (robot.place or "").lower() == exp.place.lower()
        detail = f"robot is at {robot.place or 'an unnamed spot'}"
    elif isinstance(exp, ReplyMentions | ReplyAvoids):
        said = " ".join(t.say for t in chosen)
        words = exp.any_of if isinstance(exp, ReplyMentions) else exp.none_of
        hit = any(w.lower() in said.lower() for w in words)
        passed = hit if isinstance(exp, ReplyMentions) else bool(chosen) and not hit
        detail = f"said {said[:80]!r}" if chosen else "no reply"
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
    elif isinstance(exp, ActionRejected):
        reasons = [r for t in chosen for r in t.rejected]
        passed = any(exp.skill is None or r.startswith(exp.skill) for r in reasons)
        detail = "; ".join(reasons)[:80] or "nothing rejected"
    elif isinstance(exp, RobotNotIn):
        passed = exp.room.lower() not in (r.lower() for r in robot.rooms_visited)
        detail = f"visited {' > '.join(robot.rooms_visited)}"
    elif isinstance(exp, NoViolation):
        passed = not robot.violations
        detail = "; ".join(robot.violations) or "none"
    elif isinstance(exp, StateVisited):
        passed = exp.state.upper() in states
        detail = f"states {sorted(set(states))}"
    elif isinstance(exp, TurnInterrupted):
        passed = any(t.interrupted for t in chosen)
        detail = f"spoken {chosen[0].spoken!r}" if chosen else "no such turn"
    elif isinstance(exp, TurnAnswered):
        passed = any(t.error is None and t.say.strip() for t in chosen)
        detail = (chosen[0].error or repr(chosen[0].say[:60])) if chosen else "not taken"
    return Check(exp.describe(), passed, detail, exp.memory_probe)


class _TrackedMemory:
    """Long-term memory whose pending writes can be awaited (between sessions)."""

    def __init__(self, inner: TurnMemory) -> None:
        self.inner = inner
        self.pending: set[asyncio.Task[Any]] = set()

    def recall(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        return self.inner.recall(query, person, skip)

    async def prepare(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        return await self.inner.prepare(query, person, skip)

    def revision(self) -> int:
        return self.inner.revision()

    async def remember(self, record: TurnRecord) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.pending.add(task)
        try:
            await self.inner.remember(record)
        finally:
            if task is not None:
                self.pending.discard(task)

    async def flush(self) -> None:
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)


class _ServerFault:
    """Makes the brain's server fail while it answers one line, then brings it back.

    The instant brain's server (ScriptedBackend) breaks its stream after a few chunks,
    which is deterministic; an embedded llama.cpp server is killed when the reply starts
    streaming and restarted on the same port. Other endpoints cannot be made to fail.
    """

    def __init__(self, brain: Brain) -> None:
        self.backend = getattr(brain, "backend", None)
        self.server = brain.server
        self.armed = False
        self.tripped = False
        self._kill: asyncio.Task[None] | None = None

    @property
    def supported(self) -> bool:
        return self.backend is not None or self.server is not None

    def arm(self) -> None:
        self.armed = True
        if self.backend is not None:
            self.backend.die_after_chunks = 3

    def on_state(self, dest: str, down_s: float) -> None:
        if not self.armed:
            return
        if dest == "SPEAKING" and self.server is not None and self._kill is None:
            self._kill = asyncio.create_task(asyncio.to_thread(self.server.stop))
        if dest == "SAFE_STOP":
            self.tripped = True
            self.armed = False
            if self.backend is not None and down_s > 0:
                self.backend.down = True

    async def restore(self, config: Config) -> None:
        if self._kill is not None:
            await self._kill
        if self.backend is not None:
            self.backend.down = False
            self.backend.die_after_chunks = None
        if self.server is not None:
            self.server.start()
            await self.server.wait_ready(config.embedded.startup_timeout_s)


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
    clock: SimClock | None = None,
    robot: SimRobot | None = None,
    sinks: list[EventSink] | None = None,
) -> EpisodeResult:
    """Play the scenario's lines to the agent (as text, or spoken when `voice` is given;
    then `bus` must be the bus the voice stack listens on). `memory` (LongTermMemory)
    gets the simulated clock, so days pass for it too. `sinks` see every event, like
    `on_event`; those that are EpisodeWatchers are attached to the robot first."""
    started = time.perf_counter()
    world = World.load(scenario.world) if scenario.world else World.load()
    bus = bus or Bus()
    clock = clock or SimClock()
    start = world.places[scenario.start] if scenario.start else None
    robot = robot or SimRobot(world, bus, start, clock=clock, safety=config.safety)
    for sink in sinks or ():
        if isinstance(sink, EpisodeWatcher):
            sink.attach(robot, clock)
    if memory is not None and hasattr(memory, "clock"):
        memory.clock = clock.wall_time
    tracked = _TrackedMemory(memory) if memory is not None else None
    speech: SpeechOutput = voice.output if voice else SimSpeechOutput(bus, clock)
    events: list[AgentEvent] = []
    event_times: list[float] = []
    states: list[str] = []
    progress = asyncio.Event()
    episode_log = EpisodeLog(log_path) if log_path else None
    fault = _ServerFault(brain)
    outbound = [s for s in (episode_log, on_event, *(sinks or [])) if s is not None]

    def observe(event: AgentEvent) -> None:
        events.append(event)
        event_times.append(clock.t)
        if event.kind == "state":
            states.append(str(event.data["dest"]))
            fault.on_state(str(event.data["dest"]), scenario.server_down_s)
        for sink in outbound:
            sink(event)
        progress.set()

    def note(text: str, **data: Any) -> None:
        observe(SimEvent(text, {"sim_t": round(clock.t, 3), **data}))

    line_turns: list[TurnRecord | None] = []
    all_turns: list[TurnRecord] = []
    agent: Agent | None = None
    loop_task: asyncio.Task[None] | None = None

    async def start_agent(session: int) -> Agent:
        nonlocal loop_task
        if memory is not None and hasattr(memory, "session"):
            memory.session = f"{scenario.name}-{session}"
        new = build_agent(
            config, bus, robot, brain,
            memory=tracked, site=world.site_map(), on_event=observe, speech=speech,
        )  # fmt: skip
        loop_task = asyncio.create_task(new.run())
        await new.ready.wait()
        await new.warm_up()
        return new

    async def stop_agent() -> None:
        if loop_task is not None:
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)
        if agent is not None:
            # a turn's write may still wait for its late transcript before memory sees it
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(agent.drain(), DRAIN_TIMEOUT_S)
        if tracked is not None:
            await tracked.flush()

    async def wait_for(predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            progress.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(progress.wait(), left)
        return True

    def answered(base: int, n_events: int) -> Any:
        """A turn numbered >= base finished, or the utterance was ignored, since n_events."""

        def done() -> bool:
            for e in events[n_events:]:
                if e.kind == "turn" and e.data["index"] >= base:
                    return True
                if e.kind == "note" and "ignored while" in e.data["text"]:
                    return True
            return False

        return done

    def say_text(line: Line, person: str, interrupting: bool) -> tuple[int, int]:
        assert agent is not None
        mark = (agent.turn_count, len(events))
        if interrupting:  # what the listener publishes when someone starts talking
            bus.publish(VOICE, VoiceActivity(speaking=True))
            bus.publish(VOICE, VoiceActivity(speaking=False))
        bus.publish(USER_TEXT, UserUtterance(text=line.text, person=person))
        return mark

    spoken: dict[int, tuple[asyncio.Task[None], asyncio.Event]] = {}
    said: dict[int, tuple[int, int]] = {}
    """Spoken lines whose audio is all in the mic: where the agent stood at that moment.
    A person who pauses mid-line is heard as two utterances, and the first one's turn (cut
    short by the rest of the line) is not the answer: the answer is the turn that starts
    after the whole line was said."""

    def speak_line(
        idx: int, line: Line, person: str, audio: bytes | None = None
    ) -> tuple[int, int]:
        assert agent is not None and voice is not None
        mark = (agent.turn_count, len(events))

        def all_said() -> None:
            assert agent is not None
            said[idx] = (agent.turn_count, len(events))
            progress.set()

        done = asyncio.Event()
        saying = voice.say(
            bus, line.text, person, done, noise_dbfs=line.noise_dbfs, seed=idx,
            on_said=all_said, audio=audio,
        )  # fmt: skip
        task = asyncio.create_task(saying)
        spoken[idx] = (task, done)
        return mark

    def line_answered(idx: int, mark: tuple[int, int]) -> Any:
        if idx not in spoken:  # a typed line
            return answered(*mark)
        return lambda: idx in said and answered(*said[idx])()

    async def talk_over(idx: int, line: Line, seen: int) -> tuple[int, int]:
        assert voice is not None
        # made first, so the words land interrupt_after_s into the reply, however long
        # synthesis takes; speech runs on the real clock, at the voice's pace
        person = line.person or scenario.person
        audio = await asyncio.to_thread(voice.line_audio, line.text, line.noise_dbfs, idx, person)
        await wait_for(lambda: "SPEAKING" in states[seen:], LINE_TIMEOUT_S)
        await asyncio.sleep(max(0.0, (line.interrupt_after_s or 0.0) - LEAD_IN_S) / voice.speed)
        note(f"{line.person or scenario.person} interrupts the robot")
        return speak_line(idx, line, line.person or scenario.person, audio)

    session_no, day, session_key = 0, 1, None
    pre_said: dict[int, tuple[int, int]] = {}
    talking_over: dict[int, asyncio.Task[tuple[int, int]]] = {}
    try:
        for n, line in enumerate(scenario.lines):
            line_day = line.day or day
            key = line.session if line.session is not None else session_key
            if agent is None or line_day > day or key != session_key:
                if agent is not None:
                    await stop_agent()
                    session_no += 1
                if line_day > day or (n == 0 and line.at):
                    clock.jump_to(line_day, line.at)
                day, session_key = line_day, key
                note(f"day {day}, session {session_no + 1}", day=day, session=session_no + 1)
                agent = await start_agent(session_no)
            person = line.person or scenario.person
            if n == (scenario.server_fails_at or 0) - 1:
                if fault.supported:
                    fault.arm()
                    note("model server will fail during this turn")
                else:
                    note("server failure not simulated: this brain cannot be made to fail")
            nxt = scenario.lines[n + 1] if n + 1 < len(scenario.lines) else None
            interrupter = (
                nxt
                if nxt is not None
                and nxt.interrupt_after_s is not None
                and (nxt.day or day) == day
                and (nxt.session is None or nxt.session == key)
                else None
            )
            seen = len(states)
            if n in pre_said:
                mark = pre_said.pop(n)
            elif n in talking_over:
                mark = await talking_over.pop(n)
            else:
                await clock.sleep(line.pause_s)
                mark = (
                    speak_line(n, line, person)
                    if voice is not None
                    else say_text(line, person, interrupting=False)
                )
            if interrupter is not None and isinstance(speech, SimSpeechOutput):

                def fire(idx: int = n + 1, later: Line = interrupter) -> None:
                    note(f"{later.person or scenario.person} interrupts the robot")
                    pre_said[idx] = say_text(later, later.person or scenario.person, True)

                speech.arm_interruption(interrupter.interrupt_after_s or 0.0, fire)
            elif interrupter is not None:
                talking_over[n + 1] = asyncio.create_task(talk_over(n + 1, interrupter, seen))
            ok = await wait_for(line_answered(n, mark), LINE_TIMEOUT_S)
            mark = said.pop(n, mark)
            if isinstance(speech, SimSpeechOutput):
                speech.disarm()
            if n in spoken:
                task, done = spoken.pop(n)
                done.set()
                await task
            if not ok:
                raise TimeoutError(f"line {n + 1} got no answer in {LINE_TIMEOUT_S:g} s")
            taken = [t for t in agent.turns if t.index >= mark[0]][:1]
            line_turns.append(taken[0] if taken else None)
            if fault.tripped:
                fault.tripped = False
                await clock.sleep(scenario.server_down_s)
                await fault.restore(config)
                note("model server is back")
                if not await wait_for(lambda: states[-1] != "SAFE_STOP", RECOVERY_TIMEOUT_S):
                    raise TimeoutError("the agent stayed in SAFE_STOP after the server came back")
            known = {id(t) for t in all_turns}
            all_turns.extend(t for t in agent.turns if id(t) not in known)
    finally:
        for over in talking_over.values():
            over.cancel()
        for voice_task, voice_done in spoken.values():
            voice_done.set()
            voice_task.cancel()
        await stop_agent()
        if episode_log is not None:
            episode_log.close()
    return EpisodeResult(
        scenario=scenario.name,
        turns=all_turns,
        checks=check_expectations(scenario, all_turns, robot, line_turns, states),
        violations=robot.violations,
        final_place=robot.place,
        log_path=log_path,
        events=events,
        line_turns=line_turns,
        event_times=event_times,
        sim_s=clock.active_s,
        days=clock.day,
        wall_s=time.perf_counter() - started,
        states=states,
    )

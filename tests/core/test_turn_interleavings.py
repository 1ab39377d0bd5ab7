"""The turn engine under interleavings: hypothesis drives utterances, voice onsets and
ends, coughs, e-stop, model errors, slow and stalled streams and rejected actions into the
real agent loop (scripted model double, simulated robot), and checks after every step:

- the machine is in a legal state, and its log is one unbroken chain of transitions;
- never two turns at once;
- no robot audio after a barge-in until the next turn (a resumed reply after a cough
  excepted: that is the point of resuming);
- the robot never starts a motion outside ACTING, and none runs once SAFE_STOP is reached;
- at the end, every completed turn was written to memory exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from omni_agent.actions import Action, ActionResult
from omni_agent.agent import Agent, NoMemory, TurnRecord
from omni_agent.config import Config
from omni_agent.events import AgentEvent, Note, StateChanged, TurnEnded, UserSaid
from omni_agent.messages import EStop, UserUtterance, VoiceActivity
from omni_agent.model.client import ModelClient
from omni_agent.model.profiles import get_profile
from omni_agent.speech.handle import SpeechHandle
from omni_agent.state import State
from omni_agent.transport import ESTOP, USER_TEXT, VOICE, Bus
from sim.brains.scripted import ScriptedBackend, ScriptedReply, last_user_text
from sim.robot import SimRobot
from sim.world import World

LINES = {
    "hello": ScriptedReply(say="Hello there, I am Robbie, nice to meet you today."),
    "kitchen": ScriptedReply(
        say="Going to the kitchen.", actions=[{"skill": "navigate_to", "place": "kitchen"}]
    ),
    "stairs": ScriptedReply(
        say="Here I go!", actions=[{"skill": "navigate_to", "place": "stairs"}]
    ),
    "sing": ScriptedReply(
        say="Sure.", actions=[{"skill": "say", "text": "La la la, a little song for you."}]
    ),
}


def script(body: dict[str, Any]) -> ScriptedReply:
    words = last_user_text(body).split("says:")[-1]
    return next((r for key, r in LINES.items() if key in words), LINES["hello"])


class PacedOutput:
    """Speech output whose handles play each word over a few milliseconds (text stands
    for audio), recording what is heard in the shared timeline."""

    def __init__(self, timeline: list[tuple[str, Any]]) -> None:
        self.timeline = timeline

    def start(self) -> SpeechHandle:
        return _PacedHandle(self.timeline)

    async def close(self) -> None:
        pass


class _PacedHandle(SpeechHandle):
    def __init__(self, timeline: list[tuple[str, Any]]) -> None:
        super().__init__()
        self._timeline = timeline
        self._words: asyncio.Queue[str | None] = asyncio.Queue()
        self._player = asyncio.get_running_loop().create_task(self._play())

    def _on_text(self, delta: str) -> None:
        self._words.put_nowait(delta)

    def _on_end(self) -> None:
        self._words.put_nowait(None)

    def _on_interrupt(self) -> None:
        self._player.cancel()

    async def _play(self) -> None:
        while (word := await self._words.get()) is not None:
            await asyncio.sleep(0.002)
            if self.interrupted:
                return
            self._timeline.append(("audio", word))
            self._mark_spoken(word)
        self._played_out.set()


class WatchedRobot(SimRobot):
    """The simulated robot, noting the machine's state whenever a motion starts."""

    agent: Agent
    starts: list[State]
    moving = False

    async def execute(self, action: Action) -> ActionResult:
        self.starts.append(self.agent.machine.state)
        self.moving = True
        try:
            await asyncio.sleep(0.005)  # a motion takes time: e-stops land during it
            return await super().execute(action)
        finally:
            self.moving = False


class CountingMemory(NoMemory):
    def __init__(self) -> None:
        self.writes: Counter[int] = Counter()

    async def remember(self, record: TurnRecord) -> None:
        self.writes[record.index] += 1


class TurnInterleavings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.timeline: list[tuple[str, Any]] = []
        self.events: list[AgentEvent] = []
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        world = World.load()
        self.bus = Bus()
        self.robot = WatchedRobot(world, self.bus)
        self.robot.starts = []
        self.backend = ScriptedBackend(script, chunk_chars=6)
        config = Config()
        config.model.backoff_s = 0.0
        config.model.retries = 0
        config.model.first_token_timeout_s = 0.2
        config.model.total_timeout_s = 0.5
        client = ModelClient("http://scripted/v1", config.model, transport=self.backend)
        self.memory = CountingMemory()
        self.agent = Agent(
            config, self.bus, self.robot, client, get_profile("llama-cpp"),
            speech=PacedOutput(self.timeline), memory=self.memory,
            site=world.site_map(), on_event=self._observe,
        )  # fmt: skip
        self.robot.agent = self.agent
        self.task = asyncio.create_task(self.agent.run())
        await self.agent.ready.wait()

    def _observe(self, event: AgentEvent) -> None:
        self.events.append(event)
        self.timeline.append(("event", event))

    def _run(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    # ------------------------------------------------------------------ rules
    @rule(line=st.sampled_from(sorted(LINES)))
    def utterance(self, line: str) -> None:
        self.bus.publish(USER_TEXT, UserUtterance(text=f"please {line}", person="Alice"))
        self._run(0)

    @rule()
    def voice_onset(self) -> None:
        self.bus.publish(VOICE, VoiceActivity(speaking=True))
        self._run(0)

    @rule(real=st.booleans())
    def voice_end(self, real: bool) -> None:
        """The end of speech: an utterance follows (real), or it was a cough."""
        self.bus.publish(VOICE, VoiceActivity(speaking=False, utterance=real))
        self._run(0)

    @rule(engaged=st.booleans())
    def estop(self, engaged: bool) -> None:
        self.bus.publish(ESTOP, EStop(engaged=engaged))
        self._run(0)

    @rule(down=st.booleans())
    def server(self, down: bool) -> None:
        """The model server stops (every request fails) or comes back."""
        self.backend.down = down
        self._run(0)

    @rule()
    def stream_breaks(self) -> None:
        self.backend.die_after_chunks = 2

    @rule(delay=st.sampled_from([0.0, 0.01, 0.3]))
    def stream_pace(self, delay: float) -> None:
        """Fast, slow, or stalled past the first-token timeout."""
        self.backend.first_token_delay_s = delay

    @rule(seconds=st.sampled_from([0.0, 0.005, 0.02, 0.1]))
    def time_passes(self, seconds: float) -> None:
        self._run(seconds)

    # ------------------------------------------------------------------ invariants
    @invariant()
    def the_machine_is_in_a_legal_state_reached_by_a_chain_of_transitions(self) -> None:
        machine = self.agent.machine
        assert machine.state in State
        if machine.stepping:
            return  # mid-step: the new state is set a moment before it is logged
        log = list(machine.log)
        for before, after in itertools.pairwise(log):
            assert after.source == before.dest, (before, after)
            assert after.reason
        if log:
            assert log[-1].dest == machine.state.value

    @invariant()
    def never_two_turns_at_once(self) -> None:
        open_turns = 0
        for event in self.events:
            if isinstance(event, UserSaid):
                open_turns += 1
            elif isinstance(event, TurnEnded):
                open_turns -= 1
            assert 0 <= open_turns <= 1

    @invariant()
    def no_robot_audio_after_a_barge_in_until_the_next_turn(self) -> None:
        quiet = False
        for kind, item in self.timeline:
            if kind == "audio":
                assert not quiet, f"robot audio {item!r} after a barge-in"
            elif isinstance(item, StateChanged) and item.trigger == "hear":
                quiet = True
            elif isinstance(item, UserSaid | Note) and not (
                isinstance(item, Note) and "resuming" not in item.text
            ):
                quiet = False  # a new turn, or a reply resumed after a cough

    @invariant()
    def the_robot_moves_only_when_acting_and_never_in_safe_stop(self) -> None:
        assert all(state == State.ACTING for state in self.robot.starts), self.robot.starts
        settled = self.agent._turn_task is None or self.agent._turn_task.done()
        if self.agent.machine.state == State.SAFE_STOP and settled:
            assert not self.robot.moving

    @invariant()
    def no_turn_state_outlives_its_turn(self) -> None:
        """The jam of old: a cancelled turn left THINKING behind, and nothing answered."""
        turn = self.agent._turn_task
        at_rest = (turn is None or turn.done()) and not self.agent.speech.audible
        if at_rest and not self.agent.machine.stepping:
            self._run(0)  # let the turn's own ending run (it is scheduled, not done)
            turn = self.agent._turn_task
            if (turn is None or turn.done()) and not self.agent.machine.stepping:
                assert not self.agent.machine.in_turn, self.agent.machine.state

    @invariant()
    def speaking_is_shown_while_audible_outside_acting(self) -> None:
        state = self.agent.machine.state
        if state in (State.IDLE, State.LISTENING):
            # a barge-in or a finished turn has silenced everything
            assert not self.agent.speech.audible or state == State.LISTENING

    def teardown(self) -> None:
        async def finish() -> None:
            self.backend.down = False
            self.backend.first_token_delay_s = 0.0
            self.bus.publish(ESTOP, EStop(engaged=False))
            self.bus.publish(VOICE, VoiceActivity(speaking=False, utterance=False))
            for _ in range(400):  # until the loop has come to rest (bounded)
                turn = self.agent._turn_task
                if (turn is None or turn.done()) and not self.agent.speech.audible:
                    break
                await asyncio.sleep(0.005)
            await self.agent.drain()
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

        async def bounded() -> None:
            finishing = asyncio.ensure_future(finish())
            await asyncio.wait({finishing}, timeout=20)
            if not finishing.done():
                stuck = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                stacks = [f"{t!r}: {t.get_stack()}" for t in stuck]
                finishing.cancel()
                raise AssertionError("the agent did not come to rest:\n" + "\n".join(stacks))
            finishing.result()

        try:
            self.loop.run_until_complete(bounded())
            completed = {
                e.index for e in self.events if isinstance(e, TurnEnded) and e.error is None
            }
            assert set(self.memory.writes) == completed
            assert all(n == 1 for n in self.memory.writes.values()), self.memory.writes
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


TurnInterleavings.TestCase.settings = settings(
    max_examples=int(os.environ.get("INTERLEAVINGS", "60")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_turn_interleavings = TurnInterleavings.TestCase

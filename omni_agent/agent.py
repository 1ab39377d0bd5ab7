"""The agent: from a finished user utterance to speech and safe robot actions.

One turn: THINKING (request streamed to the model) -> SPEAKING (speech starts with the
first words) -> ACTING (each action validated, then executed) -> IDLE once everything
scheduled has been heard. The state machine is the only authority on interaction state:
every path (barge-in, a cough, e-stop, a model or controller error, a second utterance)
ends in a legal state through a logged transition with a reason. Every robot utterance
goes through one speech scheduler, so a barge-in silences all of them at once.

`Agent` is the facade that the simulator, the ROS nodes and the tests construct and
call; the work is done by units that can be read one at a time:

- omni_agent/inputs.py: a loop per subscribed topic (utterances, transcripts, partial
  transcripts, voice activity, e-stop), barge-in and false interruptions;
- omni_agent/turn.py: running one turn (THINKING -> SPEAKING -> ACTING) to its record;
- omni_agent/speculation.py: work started before the endpoint and the rule for using it.

What stays here is what they share: whether a turn may start and how it settles, the
running turn (which barge-in and e-stop cancel), safe stop and recovery, and the events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

from omni_agent.actions import Robot
from omni_agent.config import Config
from omni_agent.conversation import Conversation
from omni_agent.events import AgentEvent, EventFanout, EventSink, Note, StateChanged
from omni_agent.inputs import InputLoops, Transcripts
from omni_agent.messages import Pose2D, SceneDescription, StateChange, UserUtterance
from omni_agent.model.client import ModelClient
from omni_agent.model.profiles import BackendProfile
from omni_agent.safety import SafetyEnvelope, SiteMap
from omni_agent.speculation import Speculator
from omni_agent.speech.handle import SpeechHandle, SpeechOutput, TextSpeechOutput
from omni_agent.speech.scheduler import SpeechScheduler
from omni_agent.state import InteractionMachine, State, Transition
from omni_agent.transport import SCENE, STATE, Bus
from omni_agent.turn import (
    NoMemory,
    Recollection,
    TurnMemory,
    TurnRecord,
    TurnRunner,
    TurnTrace,
    discard,
)

__all__ = [  # the names callers import from here; the units own them
    "Agent",
    "NoMemory",
    "Recollection",
    "TurnMemory",
    "TurnRecord",
    "TurnTrace",
]

log = logging.getLogger(__name__)


class Agent:
    """The robot's side of the conversation; `run()` serves the bus until cancelled."""

    def __init__(
        self,
        config: Config,
        bus: Bus,
        robot: Robot,
        client: ModelClient,
        profile: BackendProfile,
        *,
        speech: SpeechOutput | None = None,
        memory: TurnMemory | None = None,
        site: SiteMap | None = None,
        on_event: EventSink | None = None,
        resume_after_false_interruption: bool = True,
    ) -> None:
        self.config = config
        self.bus = bus
        self.robot = robot
        self.client = client
        self.profile = profile
        self.speech = SpeechScheduler(speech or TextSpeechOutput(bus))
        self.memory = memory or NoMemory()
        site = site or SiteMap()
        site.places = {**config.robot.places, **site.places}
        self.places = site.places
        self.safety = SafetyEnvelope(config.safety, site)
        self.conversation = Conversation(config, profile, sorted(self.places))
        self.events = EventFanout(on_event) if on_event else EventFanout()
        self.resume_after_false_interruption = resume_after_false_interruption
        self.turns: list[TurnRecord] = []
        """The latest turns, oldest first (at most TURNS_KEPT)."""
        self.transcripts = Transcripts()
        """Transcripts that follow heard utterances, by turn id."""
        self.speculation = Speculator(self)
        self.runner = TurnRunner(self)
        self.inputs = InputLoops(self)
        self._next_index = 0
        self._backend_ok = True
        self._turn_task: asyncio.Task[TurnRecord] | None = None
        self._interrupted: TurnRecord | None = None
        """The turn a barge-in cut, until the speech proves real (or a cough)."""
        self._background: set[asyncio.Task[Any]] = set()
        self._recovering: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        """Set once run() is subscribed to its topics."""
        self.machine = InteractionMachine(self._on_transition, lambda: self._backend_ok)

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        """Serve utterances, transcripts, e-stop and voice activity until cancelled."""
        try:
            await self.inputs.run()
        finally:
            if self._recovering is not None:
                self._recovering.cancel()

    async def warm_up(self) -> None:
        """Send the static prompt once so the server caches its prefix before the first turn."""
        await discard(self.client, self.conversation.warmup_request())

    async def drain(self) -> None:
        """Wait for memory writes still running in the background."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    @property
    def turn_count(self) -> int:
        """Turns started since this agent was made (the next turn's index)."""
        return self._next_index

    async def respond(self, utt: UserUtterance) -> TurnRecord | None:
        """Run one turn to its end (or its interruption); None if it could not start.

        Turns never overlap: utterances are served one after another, and a barge-in
        ends the running turn before the next one starts.
        """
        if self.machine.state in (State.SAFE_STOP, State.ERROR):
            self._emit(Note(f"ignored while {self.machine.state.value}: {utt.text!r}"))
            return None
        if not utt.text.strip() and not (self.profile.audio_in and utt.audio_wav):
            await self.machine.move("give_up", "nothing was understood")
            return None
        task = asyncio.create_task(self.runner.run(utt))
        self._turn_task = task
        try:
            await asyncio.wait({task})  # a cancelled turn (barge-in, e-stop) is not our error
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            self._turn_task = None
            await self._settle()
        return None if task.cancelled() else task.result()

    async def _settle(self) -> None:
        """After a turn, whatever ended it: never leave the machine in a turn's state."""
        if not self.machine.in_turn:
            return
        if self.speech.audible:
            await self.machine.move("speak", "turn over, still speaking")
            self._in_background(self._finish_when_quiet("turn over, speech played out"))
        else:
            await self.machine.move("finish", "turn over")

    async def _cancel_turn(self) -> None:
        """Silence everything and end the running turn; returns once it has unwound."""
        self.speech.interrupt()
        task = self._turn_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    # ------------------------------------------------------------------ safe stop
    async def _enter_safe_stop(self, reason: str) -> None:
        await self.robot.halt()
        self._backend_ok = False
        await self.machine.move("safe_stop", reason)
        if self._recovering is None or self._recovering.done():
            self._recovering = asyncio.create_task(self._wait_for_backend())

    async def _wait_for_backend(self) -> None:
        while not await self.client.ready():
            await asyncio.sleep(self.config.model.recovery_poll_s)
        self._backend_ok = True
        await self._try_recover("model server is back")

    async def _try_recover(self, reason: str) -> None:
        if self.machine.state == State.SAFE_STOP:
            await self.machine.move("recover", reason)

    # ------------------------------------------------------------------ speech outside a turn
    async def _speak_outside_turn(self, started: Awaitable[SpeechHandle], reason: str) -> None:
        await started
        await self._finish_when_quiet(reason)

    async def _finish_when_quiet(self, reason: str) -> None:
        """Speech outside a turn: back to IDLE once it has all been heard."""
        await self.speech.wait_quiet()
        if self.machine.state == State.SPEAKING and self._turn_task is None:
            await self.machine.move("finish", reason)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ helpers
    def _situation(self) -> str:
        """Where the robot is and what it sees."""
        scene = self.bus.latest(SCENE)
        if isinstance(scene, SceneDescription):
            return scene.as_text()
        place = self._place_of(self.robot.pose)
        return f"You are in the {place}." if place else "You are somewhere in the home."

    def _seen(self) -> str:
        scene = self.bus.latest(SCENE)
        return ", ".join(t.name for t in scene.things) if scene is not None else ""

    def _place_of(self, pose: Pose2D) -> str | None:
        if not self.places:
            return None
        name, where = min(self.places.items(), key=lambda kv: kv[1].distance_to(pose))
        return name if where.distance_to(pose) < 1.5 else None

    def _on_transition(self, t: Transition) -> None:
        msg = StateChange(state=t.dest, previous=t.source, trigger=t.trigger, reason=t.reason)
        self.bus.publish(STATE, msg)
        self._emit(StateChanged(t.trigger, t.source, t.dest, t.reason, stamp=t.stamp))

    def _emit(self, event: AgentEvent) -> None:
        self.events(event)

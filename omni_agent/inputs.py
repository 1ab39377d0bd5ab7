"""What the agent hears: one loop per topic, each handing its messages to the unit that
acts on them.

- /user/utterance: every finished utterance, served one after another (Agent.respond);
- /user/transcript: transcripts that follow heard utterances, kept by turn id
  (`Transcripts`) until their turn asks;
- /user/partial_transcript: speculative recall (omni_agent.speculation);
- /user/voice_activity: barge-in, LISTENING, a cough's false interruption, prefill;
- /user/voice_hold: a voice over the robot pauses its speech while it is judged, and a
  backchannel plays it on;
- /estop: the safety path (the state first, then the turn, then the motors);
- /camera/scene: read when needed (`Agent._situation`), so it needs no loop.

Every subscription is made before `Agent.ready` is set, so no message published after
that is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from omni_agent.events import Note
from omni_agent.messages import EStop, UserUtterance, VoiceActivity, VoiceHold
from omni_agent.state import State
from omni_agent.transport import (
    ESTOP,
    USER_PARTIAL,
    USER_TEXT,
    USER_TRANSCRIPT,
    VOICE,
    VOICE_HOLD,
    Subscription,
)

if TYPE_CHECKING:
    from omni_agent.agent import Agent

log = logging.getLogger(__name__)


class Transcripts:
    """Transcripts of heard utterances, which follow the utterance on /user/transcript,
    by turn id: a turn gets its own transcript or none, whatever the order of arrival.
    A turn waits for its own a bounded time."""

    def __init__(self, keep: int = 32) -> None:
        self._texts: dict[str, str] = {}
        self._arrived: dict[str, asyncio.Event] = {}
        self._keep = keep
        self._closed = False

    def add(self, utt: UserUtterance) -> None:
        self._texts[utt.turn_id] = utt.text
        self._event(utt.turn_id).set()
        for stale in list(self._texts)[: -self._keep]:
            self._texts.pop(stale, None)
            self._arrived.pop(stale, None)

    async def wait(self, turn_id: str, timeout: float) -> str | None:
        """The transcript of this turn once it is here; None if it does not come in time
        (or the agent stopped hearing transcripts)."""
        if not self._closed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event(turn_id).wait(), timeout)
        text = self._texts.get(turn_id)
        if text is None:
            self._arrived.pop(turn_id, None)  # never came: nothing to keep for it
        return text

    def open(self) -> None:
        self._closed = False

    def close(self) -> None:
        """No more transcripts will come: whoever waits for one goes ahead without it."""
        self._closed = True
        for event in self._arrived.values():
            event.set()

    def _event(self, turn_id: str) -> asyncio.Event:
        return self._arrived.setdefault(turn_id, asyncio.Event())


class InputLoops:
    """The agent's subscriptions and the loop that serves each."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def run(self) -> None:
        """Serve every input topic until cancelled."""
        a = self.agent
        # subscribe before anything else runs, so no message published after
        # `ready` is set can be missed
        utterances = a.bus.subscribe(USER_TEXT)
        transcripts = a.bus.subscribe(USER_TRANSCRIPT)
        partials = a.bus.subscribe(USER_PARTIAL)
        estops = a.bus.subscribe(ESTOP)
        voices = a.bus.subscribe(VOICE)
        holds = a.bus.subscribe(VOICE_HOLD)
        a.transcripts.open()
        tasks = [
            asyncio.create_task(self._serve_utterances(utterances)),
            asyncio.create_task(self._collect_transcripts(transcripts)),
            asyncio.create_task(a.speculation.serve_partials(partials)),
            asyncio.create_task(self._watch_estop(estops)),
            asyncio.create_task(self._watch_voice(voices)),
            asyncio.create_task(self._watch_holds(holds)),
        ]
        a.ready.set()
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for sub in (utterances, transcripts, partials, estops, voices, holds):
                sub.close()
            a.transcripts.close()  # memory writes waiting for a transcript go ahead
            a.speculation.cancel()
            a.ready.clear()

    async def _serve_utterances(self, utterances: Subscription[UserUtterance]) -> None:
        async for utt in utterances:
            await self.agent.respond(utt)

    async def _collect_transcripts(self, transcripts: Subscription[UserUtterance]) -> None:
        async for utt in transcripts:
            self.agent.transcripts.add(utt)

    # ------------------------------------------------------------------ safety path
    async def _watch_estop(self, estops: Subscription[EStop]) -> None:
        a = self.agent
        async for msg in estops:
            if msg.engaged:
                # the state first: from here no turn can start and no action can run
                a.machine.estop_engaged = True
                await a.machine.move("safe_stop", "e-stop")
                await a._cancel_turn()
                await a.robot.halt()
            else:
                a.machine.estop_engaged = False
                await a._try_recover("e-stop released")

    # ------------------------------------------------------------------ barge-in
    async def _watch_voice(self, voices: Subscription[VoiceActivity]) -> None:
        async for activity in voices:
            await self._on_voice(activity)

    async def _watch_holds(self, holds: Subscription[VoiceHold]) -> None:
        """Pause at a voice's onset, play on after a backchannel: no state change either
        way (the robot is still SPEAKING); a barge-in arrives on VOICE and stops it."""
        async for hold in holds:
            if hold.hold:
                self.agent.speech.pause()
            else:
                self.agent.speech.resume()

    async def _on_voice(self, activity: VoiceActivity) -> None:
        a = self.agent
        if activity.speaking:
            if a.machine.state in (State.SAFE_STOP, State.ERROR):
                return
            running = a._turn_task is not None and not a._turn_task.done()
            # silence first (everything playing or scheduled, even speech not yet started),
            # then LISTENING: the cut turn can take no further step while it unwinds
            stopped = a.speech.interrupt()
            await a.machine.move("hear", "barge-in" if running else "user speaking")
            if stopped or running:
                a._interrupted = a.turns[-1] if running and a.turns else None
                await a._cancel_turn()  # the model stream closes with the turn
                if running:
                    await a.robot.halt()  # a motion of the cut turn stops with it
                a._emit(Note("barge-in: robot stopped speaking"))
            a.speculation.prefill(activity)
        elif not activity.utterance and a.machine.state == State.LISTENING:
            await self._false_interruption()

    async def _false_interruption(self) -> None:
        """Speech too short to be an utterance (a cough): back to IDLE, maybe resume."""
        a = self.agent
        await a.machine.move("give_up", "false interruption")
        turn, a._interrupted = a._interrupted, None
        if turn is None or not a.resume_after_false_interruption:
            return
        rest = turn.say[len(turn.spoken) :].strip() if turn.say.startswith(turn.spoken) else ""
        if rest and a.machine.state == State.IDLE:
            a._emit(Note("false interruption: resuming the reply"))
            await a.machine.move("speak", "resuming the reply")
            # no event watcher ever waits for playout: the resumed reply plays on its own
            started = a.speech.say(rest)  # scheduled now: a barge-in from here cancels it
            a._in_background(a._speak_outside_turn(started, "resumed reply played out"))

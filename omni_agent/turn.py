"""Running one turn: THINKING (request streamed to the model) -> SPEAKING (speech starts
with the first words) -> ACTING (each action validated, then executed).

`TurnRunner.run` takes one finished utterance to its record; it never decides whether a
turn may start or how it ends when cut (the Agent does that), and never listens to a
topic (the input loops do). What a turn needs from memory is the `TurnMemory` protocol;
what it reports is the `TurnRecord`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from omni_agent.actions import ActionRejected, ActionResult, Say, parse_action
from omni_agent.conversation import UserTurn
from omni_agent.events import (
    ActionDone,
    ActionRejectedEvent,
    Recalled,
    RobotSaid,
    TurnEnded,
    UserSaid,
)
from omni_agent.messages import Pose2D, UserUtterance, now
from omni_agent.model.client import AudioDelta, ModelClient, ModelError
from omni_agent.model.prefill import reply_opening
from omni_agent.model.reply import InvalidModelOutput, ModelReply, ReplyAssembler
from omni_agent.prompt import user_message
from omni_agent.speech.handle import SpeechHandle
from omni_agent.state import State

if TYPE_CHECKING:
    from omni_agent.agent import Agent

log = logging.getLogger(__name__)

REJECTION_NOTICE = " I can't do that safely, so I won't."
TURNS_KEPT = 256
"""Finished turns kept in `Agent.turns` (memory keeps them all; a robot runs for months)."""
LATE_TRANSCRIPT_S = 10.0
"""How long a heard turn's memory write still waits for a transcript that missed the turn."""


@dataclass(frozen=True)
class Recollection:
    """What memory recalled for one turn: the evidence text that goes into the request,
    and each piece with its kind, turn id, score and the reason it was chosen."""

    text: str = ""
    items: tuple[dict[str, Any], ...] = ()
    prefetched: bool = False
    """Built during speech from a partial transcript of the same utterance, with the same
    words and person (omni_agent.speculation)."""


class TurnMemory(Protocol):
    """What the loop needs from long-term memory (omni_agent.recall provides it)."""

    def recall(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        """Remembered evidence for this turn, leaving out the turns (by index) that the
        conversation window already shows in full."""
        ...

    async def prepare(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        """What `recall` with these arguments gives, computed ahead of time (speculation on
        a partial transcript). The agent keeps it and decides whether the turn can use it
        (omni_agent.speculation)."""
        ...

    def revision(self) -> int:
        """Changes whenever a turn is stored: a context built before that is stale."""
        ...

    async def remember(self, record: TurnRecord) -> None: ...


class NoMemory:
    """Nothing beyond the conversation window of this run."""

    def recall(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        return Recollection()

    async def prepare(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        return Recollection()

    def revision(self) -> int:
        return 0

    async def remember(self, record: TurnRecord) -> None:
        pass


@dataclass
class TurnTrace:
    """Monotonic timestamps of one turn's stages."""

    speech_end: float | None = None
    utterance: float = 0.0
    request_sent: float | None = None
    first_token: float | None = None
    first_speech: float | None = None
    done: float | None = None
    recall_ahead: str = ""
    """"used" when the turn took the recall prepared on a partial transcript, else why not
    ("no partial transcript", "the words changed", "memory changed", ...)."""
    preempted: bool = False
    """The turn used the reply requested before its endpoint (omni_agent.speculation)."""
    early_sent: float | None = None
    """When that reply's request was sent, before the endpoint."""

    def stages_ms(self) -> dict[str, float]:
        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1000, 1)

        stages = {
            "endpoint": ms(self.speech_end, self.utterance),
            "request_sent": ms(self.utterance, self.request_sent),
            "first_token": ms(self.request_sent, self.first_token),
            "first_speech": ms(self.utterance, self.first_speech),
            "voice_to_voice": ms(self.speech_end, self.first_speech),
            "done": ms(self.request_sent, self.done),
        }
        return {k: v for k, v in stages.items() if v is not None}


@dataclass
class TurnRecord:
    index: int
    person: str | None
    user_text: str
    """What the person said: typed text, or the transcript of their speech."""
    heard: bool = False
    """The model heard the words itself (an audio part)."""
    say: str = ""
    backend_transcript: str = ""
    """What a backend that speaks says its audio said (empty if it sends no transcript)."""
    spoken: str = ""
    reply_raw: str = ""
    interrupted: bool = False
    executed: list[ActionResult] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    error: str | None = None
    pose: Pose2D | None = None
    place: str | None = None
    seen: str = ""
    """What the camera's semantic channel showed when the person spoke."""
    situation: str = ""
    prompt: str = ""
    """The user message as the conversation window keeps it (without recalled memories)."""
    trace: TurnTrace = field(default_factory=TurnTrace)
    turn_id: str = ""
    """The utterance's turn id (UserUtterance.turn_id)."""


async def discard(client: ModelClient, body: dict[str, Any]) -> None:
    """Stream a request whose answer is not used (warm-up, prefill)."""
    with contextlib.suppress(ModelError):
        async for _ in client.stream(body):
            pass


class TurnRunner:
    """One turn from utterance to record, against the agent's parts (read through the
    facade, so a part swapped after construction, like `agent.memory`, is the one used)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def run(self, utt: UserUtterance) -> TurnRecord:
        a = self.agent
        record = TurnRecord(a._next_index, utt.person, utt.text, turn_id=utt.turn_id)
        a._next_index += 1
        a.speculation.begin(utt.turn_id)
        record.trace = TurnTrace(speech_end=utt.speech_end, utterance=utt.stamp)
        record.pose = a.robot.pose
        record.place = a._place_of(record.pose)
        record.seen = a._seen()
        user = UserTurn(utt.person, utt.text, utt.audio_wav, list(utt.keyframes))
        record.heard = a.conversation.hears(user)
        a.turns.append(record)
        del a.turns[:-TURNS_KEPT]
        a._emit(UserSaid(utt.person, utt.text, record.heard))
        handle: SpeechHandle | None = None
        try:  # from here every path ends the turn it opened (TurnEnded), cancelled or not
            if a.machine.state == State.SPEAKING:  # speech left outside a turn (a resumed
                a.speech.interrupt()  # reply) yields to the new turn
                await a.machine.move("finish", "a new turn starts")
            epoch = a.speech.epoch  # a barge-in from here on silences this turn's reply
            if not await a.machine.move("think", f"turn {record.index}"):
                record.interrupted = True
                record.error = f"could not start in {a.machine.state.value}"
                return record
            handle = a.speech.open(since=epoch)
            if a.profile.audio_out:
                handle.use_backend_voice()  # its text arrives before its audio: never synthesise it
            reply = await self._generate(user, record, handle)
            await self._act(reply, record)
            await a.speech.wait_quiet()
            await a.machine.move("finish", f"turn {record.index} done")
        except ModelError as exc:
            a.speech.interrupt()
            record.error = str(exc)
            await a._enter_safe_stop(str(exc))
        except asyncio.CancelledError:
            a.speech.interrupt()
            record.interrupted = True
            raise
        except Exception as exc:  # a controller bug must not leave the robot moving
            a.speech.interrupt()
            record.error = f"{type(exc).__name__}: {exc}"
            log.exception("turn %d failed", record.index)
            await a.robot.halt()
            if await a.machine.move("fail", record.error):
                await a.machine.move("reset", "turn abandoned")
        finally:
            if handle is not None:
                record.interrupted = record.interrupted or handle.interrupted
                heard_whole = record.backend_transcript and not record.interrupted
                record.spoken = record.backend_transcript if heard_whole else handle.spoken_text
                record.trace.first_speech = handle.first_audio_at
            record.trace.done = now()
            self._finish_record(record)
        return record

    async def _recall(self, user: UserTurn, record: TurnRecord) -> Recollection:
        """Memory for this turn: the speculation's when it is still valid, else built now."""
        a = self.agent
        why_not = a.speculation.why_not(record.turn_id, user.words, user.person)
        prepared = await a.speculation.take(record.turn_id, user.words, user.person)
        record.trace.recall_ahead = "used" if prepared else why_not or "no recall prepared"
        if prepared is not None:
            return prepared
        # in a thread: at 10^6 stored turns a build takes ~25 ms, too long to stall the
        # loop that hears barge-in and streams audio
        shown = set(a.conversation.shown)
        return await asyncio.to_thread(a.memory.recall, user.words, user.person, shown)

    async def _generate(
        self, user: UserTurn, record: TurnRecord, handle: SpeechHandle
    ) -> ModelReply:
        a = self.agent
        if record.heard and not user.words:
            # the transcript follows the audio; it is usually ready at the endpoint
            # (speculative ASR), and the turn goes ahead without it if it is late
            wait = a.config.memory.transcript_wait_s
            user.words = await a.transcripts.wait(record.turn_id, wait) or ""
            record.user_text = user.words
        recalled = await self._recall(user, record)
        evidence = recalled.text
        # every turn, also when nothing came back: a viewer shows what memory offered
        a._emit(
            Recalled(
                record.index,
                user.words,
                user.person,
                evidence,
                list(recalled.items),
                prefetched=recalled.prefetched,
            )
        )
        record.situation = a.conversation.situate(a._situation())
        body = a.conversation.reply_request(record.situation, user, evidence)
        assembler = ReplyAssembler(a.profile.actions, reply_opening(body))
        heard_from_backend: list[str] = []
        # the reply requested at the pause, if it was this very request: no wait for it
        early = a.speculation.take_reply(record.turn_id, user.words, user.person, body)
        record.trace.request_sent = now()
        if early is not None:
            record.trace.preempted, record.trace.early_sent = True, early.sent
        async for event in early.replay() if early is not None else a.client.stream(body):
            if record.trace.first_token is None:
                record.trace.first_token = now()
            spoken = assembler.feed(event)
            if isinstance(event, AudioDelta):
                await self._start_speaking()
                handle.push_audio(event.pcm, event.sample_rate)
                heard_from_backend.append(event.transcript)
            elif spoken:
                await self._start_speaking()
                handle.push_text(spoken)
            if assembler.say_complete and not a.profile.audio_out:
                handle.end_input()  # the last sentence is spoken while actions generate
        handle.end_input()
        reply = assembler.reply
        try:
            reply = assembler.finish()
        except InvalidModelOutput as exc:
            record.rejected.append(f"reply: {exc}")
            a._emit(ActionRejectedEvent("reply", str(exc)))
        record.say, record.reply_raw = reply.say, reply.raw
        # a backend that speaks may say its own words: its transcript is the robot's text
        record.backend_transcript = "".join(heard_from_backend).strip()
        a._emit(RobotSaid(record.backend_transcript or reply.say))
        for rejected in reply.rejected:
            self._reject(record, rejected)
        return reply

    async def _start_speaking(self) -> None:
        machine = self.agent.machine
        if machine.state == State.THINKING:
            await machine.move("speak", "first words")

    async def _act(self, reply: ModelReply, record: TurnRecord) -> None:
        a = self.agent
        for raw in reply.actions:
            try:
                action = parse_action(raw)
                a.safety.check(action, a.robot.pose)
            except ActionRejected as exc:
                self._reject(record, exc)
                break  # later actions may depend on this one: do none of them
            if isinstance(action, Say):
                await self._start_speaking()
                await a.speech.say(action.text)
                continue
            # the machine refuses `act` once stopped (e-stop): the robot never moves then
            if a.machine.state != State.ACTING and not await a.machine.move("act", action.skill):
                record.rejected.append(f"{action.skill}: not executed in {a.machine.state}")
                break
            try:  # a robot checks again from where it is when it starts (ROS)
                result = await a.robot.execute(action)
            except ActionRejected as exc:
                self._reject(record, exc)
                break
            record.executed.append(result)
            a._emit(ActionDone(result.ok, result.action, result.detail))
        if record.rejected and not record.interrupted:
            await self._start_speaking()
            await a.speech.say(REJECTION_NOTICE)
        if a.machine.state == State.ACTING and a.speech.audible:
            await a.machine.move("speak", "actions done, still speaking")

    def _reject(self, record: TurnRecord, exc: ActionRejected) -> None:
        reason = f"{exc.skill}: {exc.reason}"
        record.rejected.append(reason)
        self.agent.conversation.reject(reason)
        self.agent._emit(ActionRejectedEvent(exc.skill, exc.reason))
        log.info("action rejected: %s", reason)

    def _finish_record(self, record: TurnRecord) -> None:
        a = self.agent
        a._emit(
            TurnEnded(
                index=record.index,
                person=record.person,
                user=record.user_text,
                say=record.say,
                spoken=record.spoken,
                interrupted=record.interrupted,
                executed=[r.action for r in record.executed if r.ok],
                rejected=record.rejected,
                error=record.error,
                latency_ms=record.trace.stages_ms(),
            )
        )
        if record.error is not None:
            return
        record.prompt = user_message(record.situation, record.person, record.user_text)
        cut = record.interrupted or bool(record.rejected)
        executed = [r.action for r in record.executed if r.ok]
        reply = a.conversation.reply_for(record.reply_raw, record.spoken, executed, cut=cut)
        a.conversation.add(record.index, record.prompt, reply)
        # memory is written off the critical path: the next turn never waits for it
        a._in_background(self._remember(record))

    async def _remember(self, record: TurnRecord) -> None:
        a = self.agent
        if record.heard and not record.user_text:  # the transcript was late: wait for it
            late = await a.transcripts.wait(record.turn_id, LATE_TRANSCRIPT_S)
            record.user_text = late or ""
        try:
            await a.memory.remember(record)
        except Exception:  # memory must never take the conversation down
            log.exception("turn %d was not written to memory", record.index)

"""The agent loop: from a finished user utterance to speech and safe robot actions.

One turn: THINKING (request streamed to the model) -> SPEAKING (speech starts with the
first words) -> ACTING (each action validated, then executed) -> IDLE once everything
scheduled has been heard. The state machine is the only authority on interaction state:
every path (barge-in, a cough, e-stop, a model or controller error, a second utterance)
ends in a legal state through a logged transition with a reason. Every robot utterance
goes through one speech scheduler, so a barge-in silences all of them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from omni_agent.actions import (
    ActionRejected,
    ActionResult,
    Robot,
    Say,
    parse_action,
)
from omni_agent.config import Config
from omni_agent.conversation import Conversation, UserTurn
from omni_agent.events import (
    ActionDone,
    ActionRejectedEvent,
    AgentEvent,
    EventFanout,
    EventSink,
    Note,
    Recalled,
    RobotSaid,
    StateChanged,
    TurnEnded,
    UserSaid,
)
from omni_agent.messages import (
    EStop,
    PartialTranscript,
    Pose2D,
    SceneDescription,
    StateChange,
    UserUtterance,
    VoiceActivity,
    now,
)
from omni_agent.model.client import AudioDelta, ModelClient, ModelError
from omni_agent.model.prefill import reply_opening
from omni_agent.model.profiles import BackendProfile
from omni_agent.model.reply import InvalidModelOutput, ModelReply, ReplyAssembler
from omni_agent.prompt import user_message
from omni_agent.safety import SafetyEnvelope, SiteMap
from omni_agent.speech.handle import SpeechHandle, SpeechOutput, TextSpeechOutput
from omni_agent.speech.scheduler import SpeechScheduler
from omni_agent.state import InteractionMachine, State, Transition
from omni_agent.transport import (
    ESTOP,
    SCENE,
    STATE,
    USER_PARTIAL,
    USER_TEXT,
    USER_TRANSCRIPT,
    VOICE,
    Bus,
    Subscription,
)

log = logging.getLogger(__name__)

REJECTION_NOTICE = " I can't do that safely, so I won't."
TURNS_KEPT = 256
"""Finished turns kept in `Agent.turns` (memory keeps them all; a robot runs for months)."""


@dataclass(frozen=True)
class Recollection:
    """What memory recalled for one turn: the evidence text that goes into the request,
    and each piece with its kind, turn id, score and the reason it was chosen."""

    text: str = ""
    items: tuple[dict[str, Any], ...] = ()
    prefetched: bool = False
    """Built during speech from a partial transcript with the same words and person."""


class TurnMemory(Protocol):
    """What the loop needs from long-term memory (omni_agent.recall provides it)."""

    def recall(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        """Remembered evidence for this turn, leaving out the turns (by index) that the
        conversation window already shows in full."""
        ...

    async def prepare(self, query: str, person: str | None, skip: set[int]) -> None:
        """Start the work of `recall` with these arguments ahead of time (speculation on a
        partial transcript); a later `recall` with the same ones may then return at once."""
        ...

    async def remember(self, record: TurnRecord) -> None: ...


class NoMemory:
    """Nothing beyond the conversation window of this run."""

    def recall(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        return Recollection()

    async def prepare(self, query: str, person: str | None, skip: set[int]) -> None:
        pass

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


class Transcripts:
    """Transcripts of heard utterances, which follow the utterance on /user/transcript.

    Keyed by the utterance's end of speech; a turn waits for its own a bounded time.
    """

    def __init__(self, keep: int = 32) -> None:
        self._texts: dict[float, str] = {}
        self._arrived: dict[float, asyncio.Event] = {}
        self._keep = keep

    def add(self, utt: UserUtterance) -> None:
        if utt.speech_end is None:
            return
        self._texts[utt.speech_end] = utt.text
        self._event(utt.speech_end).set()
        for stale in list(self._texts)[: -self._keep]:
            self._texts.pop(stale, None)
            self._arrived.pop(stale, None)

    async def wait(self, key: float | None, timeout: float) -> str | None:
        if key is None:
            return None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event(key).wait(), timeout)
        return self._texts.get(key)

    def _event(self, key: float) -> asyncio.Event:
        return self._arrived.setdefault(key, asyncio.Event())


class Agent:
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
        self._next_index = 0
        self._backend_ok = True
        self._turn_task: asyncio.Task[TurnRecord] | None = None
        self._interrupted: TurnRecord | None = None
        """The turn a barge-in cut, until the speech proves real (or a cough)."""
        self._background: set[asyncio.Task[Any]] = set()
        self._recovering: asyncio.Task[None] | None = None
        self._prefilling: asyncio.Task[None] | None = None
        self._preparing: tuple[str, str | None, asyncio.Task[None]] | None = None
        """The speculative recall last started: its words, its person, its work."""
        self._recalling: tuple[str, str | None] | None = None
        """The words and person of the latest turn's recall (a partial equal to them is late)."""
        self.ready = asyncio.Event()
        """Set once run() is subscribed to its topics."""
        self.machine = InteractionMachine(self._on_transition, lambda: self._backend_ok)

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        """Serve utterances, transcripts, e-stop and voice activity until cancelled."""
        # subscribe before anything else runs, so no message published after
        # `ready` is set can be missed
        utterances = self.bus.subscribe(USER_TEXT)
        transcripts = self.bus.subscribe(USER_TRANSCRIPT)
        partials = self.bus.subscribe(USER_PARTIAL)
        estops = self.bus.subscribe(ESTOP)
        voices = self.bus.subscribe(VOICE)
        tasks = [
            asyncio.create_task(self._serve_utterances(utterances)),
            asyncio.create_task(self._collect_transcripts(transcripts)),
            asyncio.create_task(self._prepare_recalls(partials)),
            asyncio.create_task(self._watch_estop(estops)),
            asyncio.create_task(self._watch_voice(voices)),
        ]
        self.ready.set()
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for sub in (utterances, transcripts, partials, estops, voices):
                sub.close()
            preparing = self._preparing[2] if self._preparing else None
            for helper in (self._prefilling, self._recovering, preparing):
                if helper is not None:
                    helper.cancel()
            self.ready.clear()

    async def warm_up(self) -> None:
        """Send the static prompt once so the server caches its prefix before the first turn."""
        await self._discard(self.conversation.warmup_request())

    async def drain(self) -> None:
        """Wait for memory writes still running in the background."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    @property
    def turn_count(self) -> int:
        """Turns started since this agent was made (the next turn's index)."""
        return self._next_index

    async def _serve_utterances(self, utterances: Subscription[UserUtterance]) -> None:
        async for utt in utterances:
            await self.respond(utt)

    async def _collect_transcripts(self, transcripts: Subscription[UserUtterance]) -> None:
        async for utt in transcripts:
            self.transcripts.add(utt)

    async def _prepare_recalls(self, partials: Subscription[PartialTranscript]) -> None:
        """Speculative recall: memory retrieval starts on what the person has said at a
        pause, while they may still go on, so that at the endpoint the context is ready.
        One at a time, and only the newest partial is worth the work. The turn always
        recalls with the final transcript; memory hands it this work only when the words,
        the person and the window are the same (LongTermMemory.recall)."""
        while True:
            partial = await partials.get()
            while (newer := partials.get_nowait()) is not None:
                partial = newer  # superseded before its work began
            if not partial.text.strip() or not self.config.memory.speculative_recall:
                continue
            if (partial.text, partial.person) == self._recalling:
                continue  # its turn began before this work could: it recalls on its own
            work = asyncio.create_task(self._prepare(partial))
            self._preparing = (partial.text, partial.person, work)
            await asyncio.wait({work})

    async def _prepare(self, partial: PartialTranscript) -> None:
        try:
            shown = set(self.conversation.shown)  # the work runs in a thread: a copy
            await self.memory.prepare(partial.text, partial.person, shown)
        except Exception:  # the turn recalls on its own: this was only a head start
            log.exception("speculative recall for %r failed", partial.text)

    async def _speculation_for(self, words: str, person: str | None) -> None:
        """Let a speculative recall of these very words finish instead of building the
        same context twice (it began at the pause, so most of it is done)."""
        if self._preparing is None:
            return
        text, who, work = self._preparing
        if text == words and who == person and not work.done():
            await asyncio.wait({work})  # a cancelled turn leaves the work to finish

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
        task = asyncio.create_task(self._turn(utt))
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

    # ------------------------------------------------------------------ one turn
    async def _turn(self, utt: UserUtterance) -> TurnRecord:
        record = TurnRecord(self._next_index, utt.person, utt.text)
        self._next_index += 1
        record.trace = TurnTrace(speech_end=utt.speech_end, utterance=utt.stamp)
        record.pose = self.robot.pose
        record.place = self._place_of(record.pose)
        record.seen = self._seen()
        user = UserTurn(utt.person, utt.text, utt.audio_wav, list(utt.keyframes))
        record.heard = self.conversation.hears(user)
        self.turns.append(record)
        del self.turns[:-TURNS_KEPT]
        self._emit(UserSaid(utt.person, utt.text, record.heard))
        handle: SpeechHandle | None = None
        try:  # from here every path ends the turn it opened (TurnEnded), cancelled or not
            if self.machine.state == State.SPEAKING:  # speech left outside a turn (a resumed
                self.speech.interrupt()  # reply) yields to the new turn
                await self.machine.move("finish", "a new turn starts")
            epoch = self.speech.epoch  # a barge-in from here on silences this turn's reply
            if not await self.machine.move("think", f"turn {record.index}"):
                record.interrupted = True
                record.error = f"could not start in {self.machine.state.value}"
                return record
            handle = self.speech.open(since=epoch)
            if self.profile.audio_out:
                handle.use_backend_voice()  # its text arrives before its audio: never synthesise it
            reply = await self._generate(user, record, handle)
            await self._act(reply, record)
            await self.speech.wait_quiet()
            await self.machine.move("finish", f"turn {record.index} done")
        except ModelError as exc:
            self.speech.interrupt()
            record.error = str(exc)
            await self._enter_safe_stop(str(exc))
        except asyncio.CancelledError:
            self.speech.interrupt()
            record.interrupted = True
            raise
        except Exception as exc:  # a controller bug must not leave the robot moving
            self.speech.interrupt()
            record.error = f"{type(exc).__name__}: {exc}"
            log.exception("turn %d failed", record.index)
            await self.robot.halt()
            if await self.machine.move("fail", record.error):
                await self.machine.move("reset", "turn abandoned")
        finally:
            if handle is not None:
                record.interrupted = record.interrupted or handle.interrupted
                heard_whole = record.backend_transcript and not record.interrupted
                record.spoken = record.backend_transcript if heard_whole else handle.spoken_text
                record.trace.first_speech = handle.first_audio_at
            record.trace.done = now()
            self._finish_record(record)
        return record

    async def _generate(
        self, user: UserTurn, record: TurnRecord, handle: SpeechHandle
    ) -> ModelReply:
        if record.heard and not user.words:
            # the transcript follows the audio; it is usually ready at the endpoint
            # (speculative ASR), and the turn goes ahead without it if it is late
            wait = self.config.memory.transcript_wait_s
            user.words = await self.transcripts.wait(record.trace.speech_end, wait) or ""
            record.user_text = user.words
        self._recalling = (user.words, user.person)
        await self._speculation_for(user.words, user.person)
        # in a thread: at 10^6 stored turns a build takes ~25 ms, too long to stall the
        # loop that hears barge-in and streams audio
        shown = set(self.conversation.shown)
        recalled = await asyncio.to_thread(self.memory.recall, user.words, user.person, shown)
        evidence = recalled.text
        # every turn, also when nothing came back: a viewer shows what memory offered
        self._emit(
            Recalled(
                record.index,
                user.words,
                user.person,
                evidence,
                list(recalled.items),
                prefetched=recalled.prefetched,
            )
        )
        record.situation = self.conversation.situate(self._situation())
        body = self.conversation.reply_request(record.situation, user, evidence)
        assembler = ReplyAssembler(self.profile.actions, reply_opening(body))
        heard_from_backend: list[str] = []
        record.trace.request_sent = now()
        async for event in self.client.stream(body):
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
            if assembler.say_complete and not self.profile.audio_out:
                handle.end_input()  # the last sentence is spoken while actions generate
        handle.end_input()
        reply = assembler.reply
        try:
            reply = assembler.finish()
        except InvalidModelOutput as exc:
            record.rejected.append(f"reply: {exc}")
            self._emit(ActionRejectedEvent("reply", str(exc)))
        record.say, record.reply_raw = reply.say, reply.raw
        # a backend that speaks may say its own words: its transcript is the robot's text
        record.backend_transcript = "".join(heard_from_backend).strip()
        self._emit(RobotSaid(record.backend_transcript or reply.say))
        for rejected in reply.rejected:
            self._reject(record, rejected)
        return reply

    async def _start_speaking(self) -> None:
        if self.machine.state == State.THINKING:
            await self.machine.move("speak", "first words")

    async def _act(self, reply: ModelReply, record: TurnRecord) -> None:
        for raw in reply.actions:
            try:
                action = parse_action(raw)
                self.safety.check(action, self.robot.pose)
            except ActionRejected as exc:
                self._reject(record, exc)
                break  # later actions may depend on this one: do none of them
            if isinstance(action, Say):
                await self._start_speaking()
                await self.speech.say(action.text)
                continue
            # the machine refuses `act` once stopped (e-stop): the robot never moves then
            if self.machine.state != State.ACTING and not await self.machine.move(
                "act", action.skill
            ):
                record.rejected.append(f"{action.skill}: not executed in {self.machine.state}")
                break
            try:  # a robot checks again from where it is when it starts (ROS)
                result = await self.robot.execute(action)
            except ActionRejected as exc:
                self._reject(record, exc)
                break
            record.executed.append(result)
            self._emit(ActionDone(result.ok, result.action, result.detail))
        if record.rejected and not record.interrupted:
            await self._start_speaking()
            await self.speech.say(REJECTION_NOTICE)
        if self.machine.state == State.ACTING and self.speech.audible:
            await self.machine.move("speak", "actions done, still speaking")

    def _reject(self, record: TurnRecord, exc: ActionRejected) -> None:
        reason = f"{exc.skill}: {exc.reason}"
        record.rejected.append(reason)
        self.conversation.reject(reason)
        self._emit(ActionRejectedEvent(exc.skill, exc.reason))
        log.info("action rejected: %s", reason)

    def _finish_record(self, record: TurnRecord) -> None:
        self._emit(
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
        reply = self.conversation.reply_for(record.reply_raw, record.spoken, executed, cut=cut)
        self.conversation.add(record.index, record.prompt, reply)
        # memory is written off the critical path: the next turn never waits for it
        self._in_background(self._remember(record))

    async def _remember(self, record: TurnRecord) -> None:
        if record.heard and not record.user_text:  # the transcript was late: wait for it
            late = await self.transcripts.wait(record.trace.speech_end, timeout=10.0)
            record.user_text = late or ""
        try:
            await self.memory.remember(record)
        except Exception:  # memory must never take the conversation down
            log.exception("turn %d was not written to memory", record.index)

    async def _discard(self, body: dict[str, Any]) -> None:
        """Stream a request whose answer is not used (warm-up, prefill)."""
        with contextlib.suppress(ModelError):
            async for _ in self.client.stream(body):
                pass

    # ------------------------------------------------------------------ safety paths
    async def _watch_estop(self, estops: Subscription[EStop]) -> None:
        async for msg in estops:
            if msg.engaged:
                # the state first: from here no turn can start and no action can run
                self.machine.estop_engaged = True
                await self.machine.move("safe_stop", "e-stop")
                await self._cancel_turn()
                await self.robot.halt()
            else:
                self.machine.estop_engaged = False
                await self._try_recover("e-stop released")

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

    async def _cancel_turn(self) -> None:
        """Silence everything and end the running turn; returns once it has unwound."""
        self.speech.interrupt()
        task = self._turn_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    # ------------------------------------------------------------------ barge-in
    async def _watch_voice(self, voices: Subscription[VoiceActivity]) -> None:
        async for activity in voices:
            await self._on_voice(activity)

    async def _on_voice(self, activity: VoiceActivity) -> None:
        if activity.speaking:
            if self.machine.state in (State.SAFE_STOP, State.ERROR):
                return
            running = self._turn_task is not None and not self._turn_task.done()
            # silence first (everything playing or scheduled, even speech not yet started),
            # then LISTENING: the cut turn can take no further step while it unwinds
            stopped = self.speech.interrupt()
            await self.machine.move("hear", "barge-in" if running else "user speaking")
            if stopped or running:
                self._interrupted = self.turns[-1] if running and self.turns else None
                await self._cancel_turn()  # the model stream closes with the turn
                if running:
                    await self.robot.halt()  # a motion of the cut turn stops with it
                self._emit(Note("barge-in: robot stopped speaking"))
            if self.profile.prefix_cache and (self._prefilling is None or self._prefilling.done()):
                self._prefilling = asyncio.create_task(self._prefill())
        elif not activity.utterance and self.machine.state == State.LISTENING:
            await self._false_interruption()

    async def _prefill(self) -> None:
        """While the person is still speaking, have the server read everything that comes
        before their words (history, situation), so that at the endpoint only the words
        themselves are left to process. Prefix caching makes this pay off."""
        person = self.turns[-1].person if self.turns else None
        await self._discard(self.conversation.prefill_request(self._situation(), person))

    async def _false_interruption(self) -> None:
        """Speech too short to be an utterance (a cough): back to IDLE, maybe resume."""
        await self.machine.move("give_up", "false interruption")
        turn, self._interrupted = self._interrupted, None
        if turn is None or not self.resume_after_false_interruption:
            return
        rest = turn.say[len(turn.spoken) :].strip() if turn.say.startswith(turn.spoken) else ""
        if rest and self.machine.state == State.IDLE:
            self._emit(Note("false interruption: resuming the reply"))
            await self.machine.move("speak", "resuming the reply")
            # no event watcher ever waits for playout: the resumed reply plays on its own
            started = self.speech.say(rest)  # scheduled now: a barge-in from here cancels it
            self._in_background(self._speak_outside_turn(started, "resumed reply played out"))

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

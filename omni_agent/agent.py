"""The agent loop: from a finished user utterance to speech and safe robot actions.

One turn: THINKING (request streamed to the model) -> SPEAKING (speech starts with the
first words) -> ACTING (each action validated, then executed) -> IDLE. E-stop and a
failing model server force SAFE_STOP from any state; user speech during a reply
(barge-in) stops playback and generation at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from transitions import MachineError

from omni_agent.actions import (
    ActionRejected,
    ActionResult,
    Robot,
    Say,
    parse_action,
)
from omni_agent.config import Config
from omni_agent.events import AgentEvent, EventFanout, EventSink
from omni_agent.messages import (
    EStop,
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
from omni_agent.model.request import ChatTurn, UserInput, build_request
from omni_agent.prompt import example_turns, system_prompt, user_message
from omni_agent.safety import SafetyEnvelope, SiteMap
from omni_agent.speech.handle import SpeechHandle, SpeechOutput, TextSpeechOutput
from omni_agent.state import InteractionMachine, State, Transition
from omni_agent.transport import ESTOP, SCENE, STATE, USER_TEXT, VOICE, Bus, Subscription

log = logging.getLogger(__name__)

RECOVERY_POLL_S = 1.0


class TurnMemory(Protocol):
    """What the loop needs from long-term memory (omni_agent.recall provides it)."""

    def recall(self, query: str, person: str | None, skip: set[int]) -> str:
        """Remembered evidence for this turn as text, leaving out the turns (by index)
        that the conversation window already shows in full."""
        ...

    async def remember(self, record: TurnRecord) -> None: ...


class NoMemory:
    """Nothing beyond the conversation window of this run."""

    def recall(self, query: str, person: str | None, skip: set[int]) -> str:
        return ""

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
    say: str = ""
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
    prompt: str = ""
    """The user message as the conversation window keeps it (without recalled memories)."""
    trace: TurnTrace = field(default_factory=TurnTrace)


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
        self.speech = speech or TextSpeechOutput(bus)
        self.memory = memory or NoMemory()
        self.window: list[tuple[int, ChatTurn, ChatTurn]] = []
        """The conversation so far as (turn index, user, reply) chat messages."""
        site = site or SiteMap()
        site.places = {**config.robot.places, **site.places}
        self.places = site.places
        self.safety = SafetyEnvelope(config.safety, site)
        self.events = EventFanout(on_event) if on_event else EventFanout()
        self.resume_after_false_interruption = resume_after_false_interruption
        self.turns: list[TurnRecord] = []
        self._backend_ok = True
        self._turn_task: asyncio.Task[TurnRecord] | None = None
        self._speaking: SpeechHandle | None = None
        self._interrupted: TurnRecord | None = None
        self._feedback: list[str] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._recovering: asyncio.Task[None] | None = None
        self._prefilling: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        """Set once run() is subscribed to its topics."""
        self.machine = InteractionMachine(self._on_transition, lambda: self._backend_ok)
        self._system = system_prompt(
            config.robot.name, sorted(self.places), config.safety.max_linear_speed
        )
        self._examples = example_turns(config.robot.name, sorted(self.places))

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        """Serve utterances, e-stop and voice activity from the bus until cancelled."""
        # subscribe before anything else runs, so no message published after
        # `ready` is set can be missed
        utterances = self.bus.subscribe(USER_TEXT)
        estops = self.bus.subscribe(ESTOP)
        voices = self.bus.subscribe(VOICE)
        tasks = [
            asyncio.create_task(self._serve_utterances(utterances)),
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
            for sub in (utterances, estops, voices):
                sub.close()
            self.ready.clear()

    async def warm_up(self) -> None:
        """Send the static prompt once so the server caches its prefix before the first turn."""
        body = self._request(UserInput(text=user_message("You are ready.", None, "Hello")))
        body["max_tokens"] = 1
        with contextlib.suppress(ModelError):
            async for _ in self.client.stream(body):
                pass

    async def _serve_utterances(self, utterances: Subscription[UserUtterance]) -> None:
        async for utt in utterances:
            await self.respond(utt)

    async def respond(self, utt: UserUtterance) -> TurnRecord | None:
        """Run one turn to its end (or its interruption); None if it could not start."""
        if self.machine.state in (State.SAFE_STOP, State.ERROR):
            self._emit("note", text=f"ignored while {self.machine.state.value}: {utt.text!r}")
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
        return None if task.cancelled() else task.result()

    # ------------------------------------------------------------------ one turn
    async def _turn(self, utt: UserUtterance) -> TurnRecord:
        record = TurnRecord(len(self.turns), utt.person, utt.text)
        record.trace = TurnTrace(speech_end=utt.speech_end, utterance=utt.stamp)
        record.pose = self.robot.pose
        record.place = self._place_of(record.pose)
        record.seen = self._seen()
        self.turns.append(record)
        self._emit("user", person=utt.person, text=utt.text)
        await self.machine.think(reason=f"turn {record.index}")
        handle = self.speech.start()
        self._speaking = handle
        try:
            reply = await self._generate(utt, record, handle)
            await self._act(reply, record, handle)
            await handle.wait_for_playout()
            await self.machine.finish(reason=f"turn {record.index} done")
        except ModelError as exc:
            handle.interrupt()
            record.error = str(exc)
            await self._enter_safe_stop(str(exc))
        except asyncio.CancelledError:
            handle.interrupt()
            record.interrupted = True
            raise
        except Exception as exc:
            handle.interrupt()
            if isinstance(exc, MachineError) and self.machine.state == State.SAFE_STOP:
                # stopped under us (e-stop): the machine refused the turn's next step, which
                # is the point; the cancellation is on its way
                record.interrupted = True
            else:  # a controller bug must not leave the robot moving
                record.error = f"{type(exc).__name__}: {exc}"
                log.exception("turn %d failed", record.index)
                await self.robot.halt()
                if self.machine.can("fail"):
                    await self.machine.fail(reason=record.error)
                    await self.machine.reset(reason="turn abandoned")
        finally:
            self._speaking = None
            record.spoken = handle.spoken_text
            record.interrupted = record.interrupted or handle.interrupted
            record.trace.first_speech = handle.first_audio_at
            record.trace.done = now()
            self._finish_record(record)
        return record

    def _history(self) -> list[ChatTurn]:
        return [m for _, user, reply in self.window for m in (user, reply)]

    async def _prefill(self) -> None:
        """While the person is still speaking, have the server read everything that comes
        before their words (history, situation), so that at the endpoint only the words
        themselves are left to process. Prefix caching makes this pay off; the reply to
        the empty question is never used."""
        person = self.turns[-1].person if self.turns else None
        text = user_message(self._situation(), person, "")
        body = self._request(UserInput(text=text), self._history())
        for constraint in ("response_format", "grammar", "tools"):
            body.pop(constraint, None)  # no grammar to build for one throwaway token
        body["max_tokens"] = 1
        with contextlib.suppress(ModelError):
            async for _ in self.client.stream(body):
                pass

    def _request(self, user: UserInput, history: list[ChatTurn] | None = None) -> dict[str, Any]:
        return build_request(
            self.profile,
            self.config.model,
            self._system,
            self._examples + (history or []),
            user,
            list(self.config.safety.allowed_skills),
        )

    async def _generate(
        self, utt: UserUtterance, record: TurnRecord, handle: SpeechHandle
    ) -> ModelReply:
        remembered = self.memory.recall(utt.text, utt.person, {i for i, *_ in self.window})
        situation = self._situation()
        self._feedback.clear()
        record.prompt = user_message(situation, utt.person, utt.text)
        text = user_message(situation, utt.person, utt.text, remembered)
        body = self._request(
            UserInput(text=text, audio_wav=utt.audio_wav, images=utt.keyframes), self._history()
        )
        assembler = ReplyAssembler(self.profile.actions, reply_opening(body))
        record.trace.request_sent = now()
        async for event in self.client.stream(body):
            if record.trace.first_token is None:
                record.trace.first_token = now()
            spoken = assembler.feed(event)
            if isinstance(event, AudioDelta):
                await self._start_speaking()
                handle.push_audio(event.pcm, event.sample_rate)
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
            self._emit("rejected", skill="reply", reason=str(exc))
        record.say, record.reply_raw = reply.say, reply.raw
        self._emit("robot", text=reply.say)
        for rejected in reply.rejected:
            self._reject(record, rejected)
        return reply

    async def _start_speaking(self) -> None:
        if self.machine.state == State.THINKING:
            await self.machine.speak(reason="first words")

    async def _act(self, reply: ModelReply, record: TurnRecord, handle: SpeechHandle) -> None:
        for raw in reply.actions:
            try:
                action = parse_action(raw)
                self.safety.check(action, self.robot.pose)
            except ActionRejected as exc:
                self._reject(record, exc)
                break  # later actions may depend on this one: do none of them
            if isinstance(action, Say):
                extra = self.speech.start()
                extra.push_text(action.text)
                extra.end_input()
                await extra.wait_for_playout()
                continue
            if self.machine.state != State.ACTING:
                await self.machine.act(reason=action.skill)
            result = await self.robot.execute(action)
            record.executed.append(result)
            self._emit("action", ok=result.ok, action=result.action, detail=result.detail)
        if record.rejected and not record.interrupted:
            notice = self.speech.start()
            notice.push_text(" I can't do that safely, so I won't.")
            notice.end_input()
            await notice.wait_for_playout()
        if self.machine.state == State.ACTING and not handle.done:
            await self.machine.speak(reason="actions done, still speaking")

    def _reject(self, record: TurnRecord, exc: ActionRejected) -> None:
        reason = f"{exc.skill}: {exc.reason}"
        record.rejected.append(reason)
        self._feedback.append(f"(Your last action was rejected, robot did not move: {reason}.)")
        self._emit("rejected", skill=exc.skill, reason=exc.reason)
        log.info("action rejected: %s", reason)

    def _finish_record(self, record: TurnRecord) -> None:
        self._emit(
            "turn",
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
        if record.error is None:
            self._extend_window(record)
            # memory is written off the critical path: the next turn never waits for it
            task = asyncio.create_task(self.memory.remember(record))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _extend_window(self, record: TurnRecord) -> None:
        # the model's own words, byte for byte, keep the server's prompt cache valid; an
        # interrupted reply is kept as far as it was actually spoken, and rejected actions
        # are left out so the model does not learn from its own unsafe proposals
        said = record.reply_raw
        if record.interrupted or record.rejected or not said:
            said = record.spoken
            if self.profile.actions == "json_schema":
                actions = [r.action for r in record.executed if r.ok]
                said = json.dumps({"say": said, "actions": actions})
        user = ChatTurn("user", record.prompt)
        self.window.append((record.index, user, ChatTurn("assistant", said)))
        # Servers cache the prompt prefix, and the window only grows between cuts, so most
        # turns reuse it; cutting back to half at the cap keeps the prompt bounded.
        cap = self.config.memory.window_turns
        if len(self.window) > cap:
            del self.window[: len(self.window) - cap // 2]

    # ------------------------------------------------------------------ safety paths
    async def _watch_estop(self, estops: Subscription[EStop]) -> None:
        async for msg in estops:
            if msg.engaged:
                self.machine.estop_engaged = True
                self._cancel_turn()
                await self.robot.halt()
                await self.machine.safe_stop(reason="e-stop")
            else:
                self.machine.estop_engaged = False
                await self._try_recover("e-stop released")

    async def _enter_safe_stop(self, reason: str) -> None:
        await self.robot.halt()
        self._backend_ok = False
        await self.machine.safe_stop(reason=reason)
        if self._recovering is None or self._recovering.done():
            self._recovering = asyncio.create_task(self._wait_for_backend())

    async def _wait_for_backend(self) -> None:
        while not await self.client.ready():
            await asyncio.sleep(RECOVERY_POLL_S)
        self._backend_ok = True
        await self._try_recover("model server is back")

    async def _try_recover(self, reason: str) -> None:
        if self.machine.state == State.SAFE_STOP:
            await self.machine.recover(reason=reason)

    def _cancel_turn(self) -> None:
        if self._speaking is not None:
            self._speaking.interrupt()
        if self._turn_task is not None and not self._turn_task.done():
            self._turn_task.cancel()

    # ------------------------------------------------------------------ barge-in
    async def _watch_voice(self, voices: Subscription[VoiceActivity]) -> None:
        async for activity in voices:
            await self._on_voice(activity)

    async def _on_voice(self, activity: VoiceActivity) -> None:
        if activity.speaking:
            if self._turn_task is not None and self.machine.state in (
                State.THINKING,
                State.SPEAKING,
            ):
                self._interrupted = self.turns[-1] if self.turns else None
                self._cancel_turn()  # stops playback now and closes the model stream
                self._emit("note", text="barge-in: robot stopped speaking")
            if self.machine.can("hear"):
                await self.machine.hear(reason="user speaking")
            if self.profile.prefix_cache and (self._prefilling is None or self._prefilling.done()):
                self._prefilling = asyncio.create_task(self._prefill())
        elif not activity.utterance and self.machine.state == State.LISTENING:
            await self._false_interruption()

    async def _false_interruption(self) -> None:
        """Speech too short to be an utterance (a cough): back to IDLE, maybe resume."""
        await self.machine.give_up(reason="false interruption")
        turn, self._interrupted = self._interrupted, None
        if turn is None or not self.resume_after_false_interruption:
            return
        rest = turn.say[len(turn.spoken) :].strip() if turn.say.startswith(turn.spoken) else ""
        if rest:
            self._emit("note", text="false interruption: resuming the reply")
            handle = self.speech.start()
            handle.push_text(rest)
            handle.end_input()
            await handle.wait_for_playout()

    # ------------------------------------------------------------------ helpers
    def _situation(self) -> str:
        """Where the robot is and what it sees, plus feedback on rejected actions."""
        scene = self.bus.latest(SCENE)
        if isinstance(scene, SceneDescription):
            situation = scene.as_text()
        else:
            place = self._place_of(self.robot.pose)
            situation = f"You are in the {place}." if place else "You are somewhere in the home."
        return " ".join([situation, *self._feedback])

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
        self._emit("state", **asdict(t))

    def _emit(self, kind: str, **data: Any) -> None:
        self.events(AgentEvent(kind, data))

"""The listening side of a spoken turn: mic audio in, voice activity and utterances out.

`Listener` subscribes /audio/mic and /camera/image_raw and publishes:
- VoiceActivity(speaking=True, speech_start=..., turn_id=...) as soon as speech starts
  (barge-in); while the robot speaks, only once the voice proves not to be a backchannel
  ("mm-hmm", "yeah": those publish nothing and the robot talks on),
- VoiceHold(hold=True) at the onset of a voice over the robot, so the robot pauses at once
  while the voice is judged, and VoiceHold(hold=False) when it was a backchannel or a
  noise (the robot plays on from where it paused); a barge-in turns the pause into the stop,
- VoiceActivity(speaking=False) at every endpoint,
- PartialTranscript at a pause, before the endpoint, once the speculative transcription of
  the speech so far is done (the agent starts memory retrieval on it), with how much the
  turn policy leans "done" there; again whenever a check of the pause keeps the turn
  open with a new lean (the agent may start the reply itself on it),
- UserUtterance (WAV audio, ASR text, speech_end, keyframes) for every real utterance.

Each utterance gets a turn id when its speech starts; its voice activity, partial
transcripts, utterance and transcript all carry it, so the agent pairs them by identity.

A noise shorter than `VadConfig.min_speech_ms` (a cough) yields speaking=True then
speaking=False and no utterance: the agent treats that as a false interruption and
applies its resume policy.

On a robot whose mic hears its speaker, the robot's own voice is cancelled from the mic
before the VAD (`omni_agent.speech.echo`, with the robot audio seen on /speech/audio as the
reference), so it never reads as a person; where that cannot run, an energy gate stands in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from omni_agent.messages import (
    AUDIO_SAMPLE_RATE,
    AudioChunk,
    ImageFrame,
    PartialTranscript,
    UserUtterance,
    VoiceActivity,
    VoiceHold,
    new_turn_id,
    now,
)
from omni_agent.speech.asr import StreamingTranscriber, Transcript, WhisperAsr
from omni_agent.speech.echo import EchoCanceller, open_echo_canceller
from omni_agent.speech.pcm import resample, wav_bytes
from omni_agent.speech.speaker import Identification, SpeakerId
from omni_agent.speech.turn import is_backchannel
from omni_agent.speech.vad import (
    Endpointer,
    SpeechEnded,
    SpeechPaused,
    SpeechStarted,
    TurnCheck,
    VadConfig,
    VadEvent,
)
from omni_agent.transport import (
    CAMERA,
    MIC,
    SPEECH_AUDIO,
    USER_PARTIAL,
    USER_TEXT,
    USER_TRANSCRIPT,
    VOICE,
    VOICE_HOLD,
    Bus,
    Subscription,
)

log = logging.getLogger(__name__)

FALLBACK_GATE_DBFS = -30.0
"""The energy gate used when echo cancellation was asked for but cannot run."""


@dataclass
class ListenerConfig:
    max_keyframes: int = 3
    person: str | None = None
    speculative_asr: bool = True
    """Transcribe at each pause, before the endpoint confirms it (hides ASR latency), and
    publish that transcript on /user/partial_transcript while the person may go on."""
    echo_cancellation: bool = False
    """Cancel the robot's own voice from the mic (WebRTC AEC3, `omni_agent.speech.echo`),
    with the robot's played audio as the reference: for robots whose mic hears their
    speaker. Off for a bare Listener; a robot's `listening.echo_cancellation` (on by
    default) turns it on. If it cannot run, one line is logged and the energy gate below
    stands in (at FALLBACK_GATE_DBFS if unset)."""
    echo_residual_gate_dbfs: float | None = -35.0
    """With echo cancellation, while the robot speaks, mic frames still below this level
    after it are silence: AEC3 leaves up to about -40 dBFS of the robot's voice while it
    adapts (its first seconds of robot speech), which the VAD would take for a voice. A
    person at conversation level (-20 dBFS) is well above it."""
    self_voice_gate_dbfs: float | None = None
    """While the robot speaks, mic frames below this level are silence: only a person
    louder than the robot's echo is heard. Applied after echo cancellation, if both."""
    self_voice_hold_s: float = 0.3
    """How long after the last robot audio the self-voice gate stays up (echo tail)."""
    wait_for_transcript: bool = True
    """True: the utterance goes out with its transcript (text-only backends). False: it goes
    out at the endpoint with audio only, and the transcript follows on /user/transcript
    (backends that take audio: no ASR on the critical path)."""
    frame_history_s: float = 35.0
    backchannel_ms: int | None = 600
    """While the robot speaks, a voice is a barge-in only once it has lasted this long, or,
    if it ends sooner, when its words are not a backchannel ("mm-hmm", "yeah", "okay",
    "right"): those go unanswered and the robot talks on. None: every voice barges in at
    once. Needs an ASR (without one, every voice barges in at once)."""
    hold_playback: bool = True
    """While such a voice is judged, pause the robot at its onset (VoiceHold) and play on
    if it was a backchannel or a noise: a barge-in silences the robot within the VAD's
    onset, yet "mm-hmm" costs a short pause, not the robot's turn."""


class Listener:
    """VAD endpointing + ASR on the mic stream; run it with `start()` / `close()`."""

    def __init__(
        self,
        bus: Bus,
        vad_config: VadConfig | None = None,
        asr: WhisperAsr | None = None,
        config: ListenerConfig | None = None,
        speaker: SpeakerId | None = None,
    ) -> None:
        self._bus = bus
        self.speaker = speaker
        """Names each utterance's person by voice (else `config.person` stands)."""
        self.identified: list[Identification] = []
        self.config = config or ListenerConfig()
        # the turn model runs on its own thread, never on the event loop (barge-in,
        # playback and the bus keep being served while it decides)
        self.endpointer = Endpointer(vad_config, deferred=True)
        self._turn_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turn")
        self._closed = False
        if self.endpointer.turn is not None:  # no pass at the pauses: no words to wait for
            self.endpointer.turn.transcripts_expected = (
                asr is not None and self.config.speculative_asr
            )
        self._asr = asr
        self.echo: EchoCanceller | None = None
        """The echo canceller on the mic, if asked for and able to run."""
        self._gate_dbfs = self.config.self_voice_gate_dbfs
        if self.config.echo_cancellation:
            self.echo = open_echo_canceller()
            if self.echo is None and self._gate_dbfs is None:
                self._gate_dbfs = FALLBACK_GATE_DBFS
            residual = self.config.echo_residual_gate_dbfs
            if self.echo is not None and residual is not None:
                gate = self._gate_dbfs
                self._gate_dbfs = residual if gate is None else max(residual, gate)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
        self._transcriber: StreamingTranscriber | None = None
        self._speech_start = 0.0
        self._turn_id = new_turn_id()
        """The id of the utterance being spoken (a new one at every start of speech)."""
        self._voice_so_far: tuple[int, asyncio.Future[Identification]] | None = None
        """The speaker identification of the speech up to a pause (by its voiced bytes):
        reused at the endpoint when the pause was the end."""
        self._partials: set[asyncio.Task[None]] = set()
        self._partial: tuple[int, PartialTranscript] | None = None
        """The newest partial published for the open utterance, by the pause it is about
        (voiced bytes): a later check of that pause publishes it again with its lean."""
        self._frames: deque[ImageFrame] = deque()
        self._robot_audio_until = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._finishing: asyncio.Task[None] | None = None
        self.false_starts = 0
        """Noises shorter than min_speech_ms: false interruptions."""
        self.backchannels = 0
        """Backchannels heard while the robot spoke (no barge-in, no utterance)."""
        self._held_voice: float | None = None
        """Speech start of a voice heard over the robot, not yet published as a barge-in:
        it may be a backchannel."""
        self._holds: set[str] = set()
        """Turn ids of voices the robot is paused for (VoiceHold(hold=True) published)."""
        self.latency: list[dict[str, float]] = []
        """Per utterance: speech_start, speech_end, endpoint, asr_done (monotonic seconds;
        asr_done only with an ASR)."""

    def start(self) -> None:
        mic = self._bus.subscribe(MIC)
        cam = self._bus.subscribe(CAMERA)
        robot = self._bus.subscribe(SPEECH_AUDIO)
        loop = asyncio.get_running_loop()
        self._subs = (mic, cam, robot)
        self._tasks = [
            loop.create_task(self._mic_loop(mic)),
            loop.create_task(self._camera_loop(cam)),
            loop.create_task(self._robot_loop(robot)),
        ]

    async def close(self) -> None:
        self._closed = True
        for task in (*self._tasks, *self._partials):
            task.cancel()
        for task in (*self._tasks, *self._partials):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._finishing is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._finishing
        for sub in getattr(self, "_subs", ()):
            sub.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._turn_thread.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> Listener:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _robot_loop(self, sub: Subscription[AudioChunk]) -> None:
        async for chunk in sub:
            self._robot_audio_until = now() + chunk.duration + self.config.self_voice_hold_s
            if self.echo is not None:
                self.echo.played(chunk.pcm, chunk.sample_rate)

    async def _camera_loop(self, sub: Subscription[ImageFrame]) -> None:
        async for frame in sub:
            self._frames.append(frame)
            horizon = frame.stamp - self.config.frame_history_s
            while self._frames and self._frames[0].stamp < horizon:
                self._frames.popleft()

    async def _mic_loop(self, sub: Subscription[AudioChunk]) -> None:
        async for chunk in sub:
            self.feed(chunk)

    def feed(self, chunk: AudioChunk) -> None:
        """Process one mic chunk (synchronous; the mic loop calls it)."""
        if chunk.source == "robot":
            self._robot_audio_until = chunk.stamp + chunk.duration + self.config.self_voice_hold_s
            if self.echo is not None:
                self.echo.played(chunk.pcm, chunk.sample_rate)
            return  # the robot's own voice never triggers barge-in
        gate = self._gate_dbfs
        self.endpointer.extra_gate_dbfs = (
            gate if gate is not None and chunk.stamp < self._robot_audio_until else None
        )
        pcm = chunk.pcm
        if chunk.sample_rate != AUDIO_SAMPLE_RATE:
            pcm = resample(pcm, chunk.sample_rate, AUDIO_SAMPLE_RATE)
        if self.echo is not None:
            pcm = self.echo.process(pcm)  # before the VAD: the robot's voice is never a voice
        self._handle(self.endpointer.feed(pcm, chunk.stamp))
        held = self._held_voice
        limit = self.config.backchannel_ms
        if held is not None and limit is not None and self.endpointer.voiced_ms >= limit:
            self._held_voice = None  # too long for a backchannel: a barge-in
            self._barge_in(held, self._turn_id)

    def _handle(self, events: list[VadEvent]) -> None:
        for event in events:
            if isinstance(event, SpeechStarted):
                self._turn_id = new_turn_id()
                over_robot = event.start < self._robot_audio_until
                if over_robot and self._asr is not None and self.config.backchannel_ms:
                    self._held_voice = event.start  # "mm-hmm" or "stop"? its words tell
                    if self.config.hold_playback:
                        self._hold(event.start, self._turn_id)  # the robot pauses meanwhile
                else:
                    self._barge_in(event.start, self._turn_id)
                self._speech_start, self._voice_so_far = event.start, None
                self._partial = None
                if self._asr is not None:
                    self._transcriber = StreamingTranscriber(self._asr, self._executor)
            elif isinstance(event, SpeechPaused):
                if self._transcriber is not None and self.config.speculative_asr:
                    future = self._transcriber.speculate(event.pcm, event.voiced_bytes)
                    if future is not None:
                        self._speculate_partial(self._transcriber, future, event)
            elif isinstance(event, SpeechEnded):
                self._on_end(event)
            elif isinstance(event, TurnCheck):
                self._decide(event)

    def _barge_in(self, speech_start: float, turn_id: str) -> None:
        self._holds.discard(turn_id)  # the pause becomes the stop: nothing to play on
        self._bus.publish(
            VOICE, VoiceActivity(speaking=True, speech_start=speech_start, turn_id=turn_id)
        )

    def _hold(self, speech_start: float, turn_id: str) -> None:
        self._holds.add(turn_id)
        self._bus.publish(
            VOICE_HOLD, VoiceHold(hold=True, turn_id=turn_id, speech_start=speech_start)
        )

    def _release(self, turn_id: str) -> None:
        """The voice was no barge-in: the robot plays on, once no other voice holds it."""
        if turn_id not in self._holds:
            return
        self._holds.discard(turn_id)
        if not self._holds:
            self._bus.publish(VOICE_HOLD, VoiceHold(hold=False, turn_id=turn_id))

    def _decide(self, check: TurnCheck) -> None:
        """Ask the turn policy on its thread (one call at a time: the endpointer holds the
        audio behind a check); its answer is applied back on the loop."""
        turn = self.endpointer.turn
        assert turn is not None
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._turn_thread, turn.is_done, check.pcm, check.voiced_bytes, check.silence_ms
        )

        def answered(done: asyncio.Future[bool]) -> None:
            if done.cancelled() or self._closed:
                return  # closing: nothing is published after close()
            error = done.exception()
            if error is not None:
                log.error("end-of-turn model failed; the turn ends here", exc_info=error)
            ended = error is not None or done.result()
            self._handle(self.endpointer.resolve(check, ended))
            if not ended and not self._end_on_words(check.voiced_bytes):
                self._lean_again(check.voiced_bytes)

        future.add_done_callback(answered)

    def _end_on_words(self, voiced_bytes: int) -> bool:
        """End the turn at once when the pause's words, now back, make the model's answer
        at the last check a "done" (rather than wait for the next check)."""
        turn = self.endpointer.turn
        if turn is None or not turn.done_on_words(voiced_bytes):
            return False
        events = self.endpointer.end_pause(voiced_bytes)
        self._handle(events)
        return bool(events)

    def _lean_again(self, voiced_bytes: int) -> None:
        """A check kept the turn open: publish the pause's words again with how much the
        policy now leans "done" (the agent may start the reply ahead on it)."""
        turn, published = self.endpointer.turn, self._partial
        if turn is None or published is None or published[0] != voiced_bytes:
            return
        lean = turn.lean(voiced_bytes)
        if lean is None or lean == published[1].p_done:
            return
        partial = published[1].model_copy(update={"p_done": lean, "stamp": now()})
        self._partial = (voiced_bytes, partial)
        self._bus.publish(USER_PARTIAL, partial)

    def _on_end(self, event: SpeechEnded) -> None:
        endpoint = now()
        held = self._held_voice is not None
        self._held_voice = None
        if not held:
            # a noise too short to be speech (a cough) is a false interruption for the agent
            self._bus.publish(
                VOICE,
                VoiceActivity(speaking=False, speech_start=event.start, utterance=event.is_speech),
            )
        transcriber, self._transcriber = self._transcriber, None
        voice_so_far, self._voice_so_far = self._voice_so_far, None
        self._partial = None
        if not event.is_speech:
            self.false_starts += 1  # over the robot: never even a barge-in
            self._release(self._turn_id)
            return
        keyframes = self._keyframes(event.start, event.end)
        previous = self._finishing
        identifying = None
        if self.speaker is not None:  # beside ASR, on another thread: off the critical path
            if voice_so_far is not None and voice_so_far[0] == event.voiced_bytes:
                identifying = voice_so_far[1]  # the pause was the end: same voice, same answer
            else:
                identifying = asyncio.get_running_loop().run_in_executor(
                    None, self.speaker.identify, event.pcm[: event.voiced_bytes]
                )
        self._finishing = asyncio.get_running_loop().create_task(
            self._finish(
                event, endpoint, keyframes, transcriber, identifying, previous, self._turn_id, held
            )
        )

    def _speculate_partial(
        self, transcriber: StreamingTranscriber, future: Future[Transcript], pause: SpeechPaused
    ) -> None:
        """Publish the pause's transcript once it is ready, if the person has not resumed."""
        identifying = None
        if self.speaker is not None:  # who speaks belongs with the words: memory is per person
            identifying = asyncio.get_running_loop().run_in_executor(
                None, self.speaker.identify, pause.pcm
            )
            self._voice_so_far = (pause.voiced_bytes, identifying)
        task = asyncio.get_running_loop().create_task(
            self._publish_partial(
                transcriber,
                future,
                identifying,
                self._speech_start,
                pause.voiced_bytes,
                self._turn_id,
            )
        )
        self._partials.add(task)
        task.add_done_callback(self._partials.discard)

    async def _publish_partial(
        self,
        transcriber: StreamingTranscriber,
        future: Future[Transcript],
        identifying: asyncio.Future[Identification] | None,
        speech_start: float,
        voiced_bytes: int,
        turn_id: str,
    ) -> None:
        try:
            text = (await asyncio.wrap_future(future)).text
            turn = self.endpointer.turn
            if turn is not None and self._transcriber is transcriber:
                turn.hear(voiced_bytes, text)  # "go to the ...": the turn policy keeps waiting
            held = self._held_voice
            words = text.strip() and not is_backchannel(text)
            if held is not None and self._transcriber is transcriber and words:
                # words over the robot, not "mm-hmm": barge in now, not at the endpoint
                self._held_voice = None
                self._barge_in(held, turn_id)
            elif held is not None and self._transcriber is transcriber and text.strip():
                # "mm-hmm" so far: play on now; should words follow, they still barge in
                self._release(turn_id)
            if turn is not None and self._transcriber is transcriber:
                self._end_on_words(voiced_bytes)  # the final transcript follows at once
            person = (await identifying).person if identifying is not None else self.config.person
        except asyncio.CancelledError:
            if future.cancelled():
                return  # a newer pause replaced this pass before it ran
            raise
        except Exception:
            log.debug("speculative pass failed; the endpoint's pass decides", exc_info=True)
            return
        # only while this utterance is still open and this pass is its newest: at the
        # endpoint the final transcript follows at once, and an older pass is stale
        if not text or self._transcriber is not transcriber or not transcriber.is_latest(future):
            return
        lean = turn.lean(voiced_bytes) if turn is not None else None
        partial = PartialTranscript(
            text=text, person=person, turn_id=turn_id, speech_start=speech_start, p_done=lean
        )
        self._partial = (voiced_bytes, partial)
        self._bus.publish(USER_PARTIAL, partial)

    async def _finish(
        self,
        event: SpeechEnded,
        endpoint: float,
        keyframes: list[ImageFrame],
        transcriber: StreamingTranscriber | None,
        identifying: asyncio.Future[Identification] | None,
        previous: asyncio.Task[None] | None,
        turn_id: str,
        held: bool = False,
    ) -> None:
        """`held`: a short voice over the robot, no barge-in yet: its words decide."""
        person = self.config.person
        early = transcriber is not None and not self.config.wait_for_transcript and not held
        ident = None
        if identifying is not None and (early or transcriber is None):
            ident = await identifying  # the person must be known when the audio leaves
            person = ident.person
        utterance = UserUtterance(
            person=person,
            audio_wav=wav_bytes(event.pcm, AUDIO_SAMPLE_RATE),
            keyframes=keyframes,
            speech_end=event.end,
            turn_id=turn_id,
        )
        timing = {"speech_start": event.start, "speech_end": event.end, "endpoint": endpoint}
        self.latency.append(timing)
        if early or transcriber is None:
            if previous is not None and not previous.done():
                await previous  # utterances leave in the order they were spoken
            self._bus.publish(USER_TEXT, utterance)
        if transcriber is None:
            if ident is not None:
                self.identified.append(ident)
            return
        text = ""
        future = transcriber.finish(event.pcm[: event.voiced_bytes], event.voiced_bytes)
        try:
            text = (await asyncio.wrap_future(future)).text
        except Exception:
            log.exception("ASR failed; the utterance has no text")
        timing["asr_done"] = now()
        if held:
            if is_backchannel(text):
                self.backchannels += 1  # "mm-hmm": the robot talks on, nothing to answer
                self._release(turn_id)
                return
            if not text.strip():
                self.false_starts += 1  # no words at all: a noise, the robot plays on
                self._release(turn_id)
                return
            # short, but words: the barge-in, then its end, then the utterance
            self._barge_in(event.start, turn_id)
            self._bus.publish(VOICE, VoiceActivity(speaking=False, speech_start=event.start))
        update: dict[str, object] = {"text": text}
        if identifying is not None and self.speaker is not None:
            heard = ident or await identifying
            # "I'm Alice" may bind the voice: a database write, kept off the event loop
            ident = await asyncio.get_running_loop().run_in_executor(
                None, self.speaker.resolve, heard, text
            )
            timing["speaker_done"] = now()
            self.identified.append(ident)
            update["person"] = ident.person
        if previous is not None and not previous.done():
            await previous
        transcribed = utterance.model_copy(update=update)
        self._bus.publish(USER_TRANSCRIPT if early else USER_TEXT, transcribed)

    def _keyframes(self, start: float, end: float) -> list[ImageFrame]:
        """Up to N frames spread evenly over the utterance (the newest before it if none)."""
        n = self.config.max_keyframes
        if n <= 0 or not self._frames:
            return []
        during = [f for f in self._frames if start <= f.stamp <= end]
        if not during:
            before = [f for f in self._frames if f.stamp <= end]
            return before[-1:]
        if len(during) <= n:
            return during
        if n == 1:
            return [during[len(during) // 2]]
        step = (len(during) - 1) / (n - 1)
        return [during[round(i * step)] for i in range(n)]

"""Voice activity detection and endpointing with webrtcvad.

The endpointer takes 16 kHz int16 chunks of any size, cuts them into 20 or 30 ms frames,
and turns per-frame voiced/unvoiced decisions into speech-start and speech-end events.
All durations are counted in samples, so audio fed faster than real time (simulation)
is endpointed exactly as live audio; timestamps come from the chunks' monotonic stamps.

With a turn policy (`VadConfig.turn`, omni_agent/speech/turn.py) a silence only marks a
pause: at each check the policy decides whether the turn is over, up to a hard cap. The
decision is made on the samples fed up to the check. Called directly (benches, tests) the
endpointer asks the policy itself; a deferred endpointer (`deferred=True`, the listener)
instead returns a `TurnCheck` and holds the audio fed after it until the owner answers
with `resolve()`: the model then runs on a worker thread, never on the event loop, and a
pause is still judged the same at any feeding speed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from omni_agent.messages import AUDIO_SAMPLE_RATE
from omni_agent.speech.models import SETUP_HINT, ModelMissingError
from omni_agent.speech.turn import EndOfTurn, TurnConfig


@dataclass
class VadConfig:
    """Endpointing policy. Defaults are tuned for fast turn-taking with clear speech."""

    aggressiveness: int = 2
    """webrtcvad mode 0-3: higher rejects more noise (and more quiet speech)."""
    frame_ms: int = 20
    trailing_silence_ms: int = 300
    """Silence after speech that ends the utterance: the main endpointing latency. Only
    without a turn policy (`turn`), or with its "silence" policy."""
    turn: TurnConfig | None = None
    """End-of-turn policy at each pause (a model, the partial transcript, a hard cap);
    None ends every utterance after `trailing_silence_ms`. Robots take theirs from the
    `endpointing` config section, whose default is the bench's best operating point."""
    min_speech_ms: int = 200
    """Voiced span shorter than this (a cough, a click) is noise: no utterance."""
    start_frames: int = 3
    """Voiced frames among the last `start_window` frames that declare speech start."""
    start_window: int = 5
    pre_roll_ms: int = 300
    """Audio kept from before the start decision, so the first syllable is not lost."""
    max_utterance_s: float = 30.0
    energy_gate_dbfs: float | None = None
    """Frames quieter than this are silence whatever webrtcvad says (noisy rooms)."""
    release_db: float | None = 35.0
    """During speech, frames this far below the utterance's loudest frame are silence.
    webrtcvad keeps saying "speech" for ~100 ms after the voice stops (its hangover); this
    puts speech_end at the real end of the voice and starts the trailing-silence count
    there, which takes ~0.1 s off every endpoint."""


@dataclass(frozen=True)
class SpeechStarted:
    start: float
    """Monotonic time of the first voiced frame."""


@dataclass(frozen=True)
class SpeechPaused:
    """The person has just gone quiet: a good moment for a speculative transcription."""

    pcm: bytes
    voiced_bytes: int


@dataclass(frozen=True)
class SpeechEnded:
    start: float
    end: float
    """Monotonic time the voice actually ended (not when the endpoint was decided)."""
    pcm: bytes
    """Pre-roll + speech + trailing silence, 16 kHz int16 mono."""
    voiced_bytes: int
    """Offset in `pcm` where the last voiced frame ends."""
    is_speech: bool
    """False for a too-short noise: the caller treats it as a false start."""

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class TurnCheck:
    """A deferred endpointer asks: is the turn over at this check of the pause? The owner
    answers with `Endpointer.resolve(check, done)`; audio fed meanwhile waits."""

    pcm: bytes
    """The utterance so far, silence included."""
    voiced_bytes: int
    """Names the pause: where the speech before it ends."""
    silence_ms: int


VadEvent = SpeechStarted | SpeechPaused | SpeechEnded | TurnCheck


def frame_dbfs(frame: bytes) -> float:
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    rms = float(np.sqrt(np.mean(samples * samples))) if len(samples) else 0.0
    return 20 * math.log10(max(rms, 1e-3) / 32768.0)


class Endpointer:
    """Streaming VAD state machine: feed chunks, get events."""

    def __init__(
        self,
        config: VadConfig | None = None,
        *,
        pause_ms: int = 100,
        turn: EndOfTurn | None = None,
        deferred: bool = False,
    ) -> None:
        try:
            import webrtcvad
        except ImportError as exc:
            raise ModelMissingError(f"webrtcvad is not installed; {SETUP_HINT}") from exc
        self.config = config or VadConfig()
        if self.config.frame_ms not in (10, 20, 30):
            raise ValueError("frame_ms must be 10, 20 or 30")
        self._vad = webrtcvad.Vad(self.config.aggressiveness)
        self._frame_bytes = AUDIO_SAMPLE_RATE * self.config.frame_ms // 1000 * 2
        frame_s = self.config.frame_ms / 1000
        self._trailing_frames = max(1, math.ceil(self.config.trailing_silence_ms / 1000 / frame_s))
        if turn is None and self.config.turn is not None and self.config.turn.policy != "silence":
            turn = EndOfTurn(self.config.turn)
        self.turn = turn
        """Decides at each check of a pause whether the turn is over (None: silence only)."""
        self.deferred = deferred
        """Checks go out as `TurnCheck` events for the owner to decide off the caller's
        thread, instead of calling `turn.is_done` inside `feed`."""
        self.check: TurnCheck | None = None
        """The check awaiting `resolve()`: while set, fed audio is held, not endpointed."""
        self._held: list[tuple[bytes, float]] = []
        if turn is not None:
            self._check_frames = max(1, round(turn.config.check_ms / self.config.frame_ms))
            self._cap_frames = max(1, math.ceil(turn.config.max_wait_ms / self.config.frame_ms))
        self._pause_frames = max(1, math.ceil(pause_ms / 1000 / frame_s))
        self._pre_roll: deque[bytes] = deque(
            maxlen=max(
                self.config.start_window, math.ceil(self.config.pre_roll_ms / 1000 / frame_s)
            )
        )
        self._window: deque[tuple[bool, float]] = deque(maxlen=self.config.start_window)
        self._pending = b""
        self._gate_dbfs = self.config.energy_gate_dbfs
        self.extra_gate_dbfs: float | None = None
        """A second gate the owner can raise while the robot itself speaks."""
        self.in_speech = False
        self._buffer = bytearray()
        self._voiced_bytes = 0
        self._start = 0.0
        self._start_offset = 0
        self._peak_dbfs = -120.0
        self._last_voiced_end = 0.0
        self._silent_run = 0
        self._paused_sent = False

    def reset(self) -> None:
        """Forget any utterance in progress (e.g. after the mic was muted)."""
        self.in_speech = False
        self._pending = b""
        self._buffer = bytearray()
        self.check, self._held = None, []
        self._window.clear()
        self._pre_roll.clear()

    def feed(self, pcm: bytes, stamp: float) -> list[VadEvent]:
        """Feed a chunk whose last sample was captured at monotonic time `stamp`."""
        if self.check is not None:
            self._held.append((pcm, stamp))  # endpointed once the check is answered
            return []
        data = self._pending + pcm
        n_frames = len(data) // self._frame_bytes
        self._pending = data[n_frames * self._frame_bytes :]
        tail = len(self._pending) // 2
        events: list[VadEvent] = []
        frame_s = self.config.frame_ms / 1000
        for i in range(n_frames):
            frame = data[i * self._frame_bytes : (i + 1) * self._frame_bytes]
            frame_end = stamp - ((n_frames - 1 - i) * frame_s) - tail / AUDIO_SAMPLE_RATE
            events.extend(self._frame(frame, frame_end))
            if self.check is not None:  # the rest of the chunk waits for the answer
                rest = data[(i + 1) * self._frame_bytes :]
                self._pending = b""
                if rest:
                    self._held.append((rest, stamp))
                break
        return events

    def resolve(self, check: TurnCheck, done: bool) -> list[VadEvent]:
        """The answer to a deferred `check`: end the turn there if `done`, then endpoint
        the audio held since. An answer about any other pause is stale and dropped."""
        if check is not self.check:
            return []
        self.check = None
        events: list[VadEvent] = []
        if done and self.in_speech and self._voiced_bytes == check.voiced_bytes:
            events.append(self._end())
        held, self._held = self._held, []
        for i, (pcm, stamp) in enumerate(held):
            events.extend(self.feed(pcm, stamp))
            if self.check is not None:  # another check: the rest stays held behind it
                self._held.extend(held[i + 1 :])
                break
        return events

    def end_pause(self, voiced_bytes: int) -> list[VadEvent]:
        """End the turn at the pause named by `voiced_bytes` now, between checks (the
        owner learned something that decides it: the pause's words). Nothing if the person
        went on, or a check is out (its answer decides)."""
        if self.check is not None or not self.in_speech or self._voiced_bytes != voiced_bytes:
            return []
        if self._silent_run == 0:
            return []  # the last frame was voice: not a pause
        return [self._end()]

    def _is_voiced(self, frame: bytes) -> bool:
        level = frame_dbfs(frame)
        gates = [g for g in (self._gate_dbfs, self.extra_gate_dbfs) if g is not None]
        if self.in_speech and self.config.release_db is not None:
            gates.append(self._peak_dbfs - self.config.release_db)
        # Always run webrtcvad, even on gated frames: its hangover state must advance.
        voiced = bool(self._vad.is_speech(frame, AUDIO_SAMPLE_RATE))
        if gates and level < max(gates):
            return False
        if voiced:
            self._peak_dbfs = max(self._peak_dbfs, level)
        return voiced

    def _frame(self, frame: bytes, frame_end: float) -> list[VadEvent]:
        cfg = self.config
        frame_s = cfg.frame_ms / 1000
        voiced = self._is_voiced(frame)
        if not self.in_speech:
            self._pre_roll.append(frame)
            self._window.append((voiced, frame_end - frame_s))
            if sum(v for v, _ in self._window) < cfg.start_frames:
                return []
            idx, first_voiced = next((k, t) for k, (v, t) in enumerate(self._window) if v)
            self.in_speech = True
            self._start = first_voiced
            self._peak_dbfs = max(frame_dbfs(f) for f in self._pre_roll)
            self._buffer = bytearray(b"".join(self._pre_roll))
            from_end = len(self._window) - idx
            self._start_offset = len(self._buffer) - from_end * self._frame_bytes
            self._pre_roll.clear()
            self._window.clear()
            self._voiced_bytes = len(self._buffer)
            self._last_voiced_end = frame_end
            self._silent_run = 0
            self._paused_sent = False
            return [SpeechStarted(first_voiced)]

        self._buffer += frame
        if voiced:
            self._voiced_bytes = len(self._buffer)
            self._last_voiced_end = frame_end
            self._silent_run = 0
            self._paused_sent = False
            too_long = frame_end - self._start >= cfg.max_utterance_s
            return [self._end()] if too_long else []
        self._silent_run += 1
        if self._pause_over():
            return [self._end()]
        events: list[VadEvent] = []
        if self._silent_run == self._pause_frames and not self._paused_sent:
            self._paused_sent = True
            events.append(
                SpeechPaused(bytes(self._buffer[: self._voiced_bytes]), self._voiced_bytes)
            )
        if self.check is not None:
            events.append(self.check)
        return events

    @property
    def last_voiced_end(self) -> float:
        """Stamp of the end of the last voiced frame: where the current pause began."""
        return self._last_voiced_end

    @property
    def voiced_ms(self) -> float:
        """How long the voice of the utterance in progress has lasted (0 between them)."""
        if not self.in_speech:
            return 0.0
        return (self._voiced_bytes - self._start_offset) / 2 / AUDIO_SAMPLE_RATE * 1000

    @property
    def voiced_bytes(self) -> int:
        """Where the speech heard so far ends in the utterance's audio (names a pause)."""
        return self._voiced_bytes

    def _pause_over(self) -> bool:
        run = self._silent_run
        if self.turn is None:
            return run >= self._trailing_frames
        if run >= self._cap_frames:
            return True
        if run % self._check_frames:
            return False
        silence_ms = run * self.config.frame_ms
        if self.deferred:
            self.check = TurnCheck(bytes(self._buffer), self._voiced_bytes, silence_ms)
            return False
        return self.turn.is_done(bytes(self._buffer), self._voiced_bytes, silence_ms)

    def _end(self) -> SpeechEnded:
        cfg = self.config
        # Judge length by samples, not stamps: stamps compress when sim runs fast.
        voiced_s = (self._voiced_bytes - self._start_offset) / 2 / AUDIO_SAMPLE_RATE
        is_speech = voiced_s * 1000 >= cfg.min_speech_ms
        event = SpeechEnded(
            start=self._start,
            end=self._last_voiced_end,
            pcm=bytes(self._buffer),
            voiced_bytes=self._voiced_bytes,
            is_speech=is_speech,
        )
        self.in_speech = False
        self._buffer = bytearray()
        self._silent_run = 0
        return event

"""Echo cancellation: the robot's own voice taken out of its mic before anyone listens.

A robot's mic hears its speaker, often louder than the person across the room. Without
cancellation every sentence the robot says is a voice on the mic, and the robot stops
itself (a barge-in on its own echo); an energy gate (`ListenerConfig.self_voice_gate_dbfs`)
only helps when the person is louder than the echo. WebRTC's audio processing module
(AEC3, through the `livekit` wheel's `AudioProcessingModule`) subtracts an adaptive
estimate of the echo instead, so a person talking over the robot is still heard.

The reference ("reverse stream") is the robot's audio as it is played, which the listener
already sees (/speech/audio, robot chunks). It is kept the way a duplex sound card keeps
it: a queue that the mic drains 10 ms per 10 ms of mic audio, so the reference runs in
step with the mic at any feeding speed; AEC3's own delay estimator finds the room's delay
(tens of ms) and the sound card's buffering. Reference audio nobody drained is dropped past
`max_backlog_s`, and when the mic comes back after a gap (a node that publishes only while
someone speaks, a mic that was unplugged) the reference queued before it is dropped too:
it was played while nothing listened, so a stale reference never meets fresh audio.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from omni_agent.messages import AUDIO_SAMPLE_RATE
from omni_agent.speech.pcm import resample

log = logging.getLogger(__name__)

FRAME = AUDIO_SAMPLE_RATE // 100
"""WebRTC's APM takes exactly 10 ms frames."""
FRAME_BYTES = 2 * FRAME
MIC_GAP_S = 0.5
"""Wall time without mic audio after which the mic counts as having stopped."""
FRESH_REFERENCE_S = 0.25
"""After a mic gap, reference audio queued this recently is kept (it may still echo)."""


class EchoCanceller:
    """WebRTC AEC3 on 16 kHz mono int16: `played()` the robot's audio, `process()` the mic."""

    def __init__(self, *, noise_suppression: bool = False, max_backlog_s: float = 0.5) -> None:
        from livekit.rtc import AudioFrame, AudioProcessingModule

        self._frame_type = AudioFrame
        # no gain control: the VAD's release gate and the energy gate read absolute levels;
        # the high-pass filter takes out the rumble AEC3 cannot model
        self._apm = AudioProcessingModule(
            echo_cancellation=True,
            noise_suppression=noise_suppression,
            high_pass_filter=True,
            auto_gain_control=False,
        )
        self._apm.set_stream_delay_ms(0)  # the reference queue is already in step with the mic
        self._reference: deque[tuple[float, bytes]] = deque()
        """(wall time queued, 10 ms frame) of the robot's audio the mic has not met yet."""
        self._last_mic: float | None = None
        self._partial = b""
        """Reference audio short of a whole frame."""
        self._mic = b""
        """Mic audio short of a whole frame (it goes out with the next call)."""
        self._max_frames = int(max_backlog_s * 100)
        self.frames = 0
        """Mic frames processed."""

    def played(self, pcm: bytes, sample_rate: int = AUDIO_SAMPLE_RATE) -> None:
        """The robot played `pcm`: the reference for the echo the mic will hear."""
        data = self._partial + resample(pcm, sample_rate, AUDIO_SAMPLE_RATE)
        whole = len(data) - len(data) % FRAME_BYTES
        now = time.monotonic()
        for i in range(0, whole, FRAME_BYTES):
            self._reference.append((now, data[i : i + FRAME_BYTES]))
        self._partial = data[whole:]
        while len(self._reference) > self._max_frames:
            self._reference.popleft()

    def process(self, pcm: bytes) -> bytes:
        """The mic's 16 kHz audio with the robot's echo removed (whole 10 ms frames; a
        remainder waits for the next call)."""
        now = time.monotonic()
        if self._last_mic is None or now - self._last_mic > MIC_GAP_S:
            while self._reference and self._reference[0][0] < now - FRESH_REFERENCE_S:
                self._reference.popleft()
        self._last_mic = now
        data = self._mic + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        out = bytearray()
        silent = bytes(FRAME_BYTES)
        for i in range(0, whole, FRAME_BYTES):
            # the reference runs on even when the robot is quiet, as a sound card's does
            ref = self._reference.popleft()[1] if self._reference else silent
            self._apm.process_reverse_stream(self._frame_type(ref, AUDIO_SAMPLE_RATE, 1, FRAME))
            frame = self._frame_type(data[i : i + FRAME_BYTES], AUDIO_SAMPLE_RATE, 1, FRAME)
            self._apm.process_stream(frame)
            out += bytes(frame.data)
        self._mic = data[whole:]
        self.frames += whole // FRAME_BYTES
        return bytes(out)


def open_echo_canceller() -> EchoCanceller | None:
    """An echo canceller, or None (with one line in the log) where it cannot run: the
    listener then falls back to the energy gate."""
    try:
        return EchoCanceller()
    except ImportError:
        log.warning(
            "echo cancellation off: the livekit package is not installed (make setup "
            "installs it); the self-voice energy gate is the only guard against the robot's echo"
        )
    except Exception as exc:  # the native library failed to load or start
        log.warning(
            "echo cancellation off: WebRTC's audio processing failed to start (%s); "
            "the self-voice energy gate is the only guard against the robot's echo",
            exc,
        )
    return None

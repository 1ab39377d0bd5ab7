"""Simulated people's voices: their lines as 16 kHz mic audio, fed into /audio/mic.

A person must not sound like the robot, or a test could pass by the robot hearing itself.
We reuse piper's joe voice but shift pitch and formants (synthesise slower, then play it
back faster) so the voice is higher and brighter; espeak-ng is used when piper is absent.

`RoomEcho` is the other half of a real room: the robot's own speaker heard by its mic,
late and quieter, with a short reverberant tail, mixed into whatever the people say.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from omni_agent.errors import UserError
from omni_agent.messages import AUDIO_SAMPLE_RATE, AudioChunk, now
from omni_agent.speech.pcm import resample, to_int16
from omni_agent.speech.tts import EspeakTts, PiperTts, Synthesizer
from omni_agent.transport import MIC, SPEECH_AUDIO, Bus, Subscription


@dataclass(frozen=True)
class UserVoice:
    pitch: float = 1.2
    """Pitch/formant shift factor (> 1 is higher than the robot)."""
    rate: float = 1.0
    """Speaking rate (> 1 is faster)."""
    level_dbfs: float = -20.0
    """RMS level of the speech in the mic signal."""


class PersonVoice:
    """Synthesises a simulated person's lines as 16 kHz int16 PCM."""

    def __init__(
        self,
        voice: UserVoice | None = None,
        tts: Synthesizer | None = None,
        *,
        deterministic: bool = False,
    ) -> None:
        self.voice = voice or UserVoice()
        if tts is None:
            try:
                tts = PiperTts(
                    length_scale=self.voice.pitch / self.voice.rate, deterministic=deterministic
                )
            except Exception:
                tts = EspeakTts(pitch=70)
        self._tts = tts

    def say(self, text: str, *, noise_dbfs: float | None = None, seed: int = 0) -> bytes:
        pcm = self._tts.synthesize(text)
        if isinstance(self._tts, PiperTts):
            # Played back `pitch` times faster than synthesised: higher pitch and formants;
            # the slower synthesis (length_scale) keeps the speaking rate natural.
            src_rate: float = self._tts.sample_rate * self.voice.pitch
        else:
            src_rate = self._tts.sample_rate
        out = resample(pcm, src_rate, AUDIO_SAMPLE_RATE)
        x = np.frombuffer(out, dtype="<i2").astype(np.float32)
        x = _trim(x)
        rms = float(np.sqrt(np.mean(x * x))) if len(x) else 1.0
        x *= 10 ** (self.voice.level_dbfs / 20) * 32768 / max(rms, 1.0)
        if noise_dbfs is not None:
            x = x + noise(len(x), noise_dbfs, seed)
        return to_int16(x).tobytes()


def _trim(x: np.ndarray, threshold: float = 300.0) -> np.ndarray:
    """Cut leading/trailing near-silence so the clip's bounds are the speech's bounds."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    return x[loud[0] : loud[-1] + 1] if len(loud) else x[:0]


def noise(n: int, level_dbfs: float, seed: int = 0) -> np.ndarray:
    """Pink-ish background noise (room hum, fans) at an RMS level, float samples."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n).astype(np.float32)
    pink = np.convolve(white, np.ones(8, np.float32) / 8, mode="same")
    rms = float(np.sqrt(np.mean(pink * pink))) or 1.0
    return np.asarray(pink * (10 ** (level_dbfs / 20) * 32768 / rms), dtype=np.float32)


def silence(seconds: float, noise_dbfs: float | None = None, seed: int = 0) -> bytes:
    n = int(seconds * AUDIO_SAMPLE_RATE)
    if noise_dbfs is None:
        return bytes(2 * n)
    return to_int16(noise(n, noise_dbfs, seed)).tobytes()


def cough(seconds: float = 0.12, level_dbfs: float = -12.0, seed: int = 1) -> bytes:
    """A short broadband burst with a fast decay: a cough or a knock, not speech."""
    n = int(seconds * AUDIO_SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / AUDIO_SAMPLE_RATE
    envelope = np.exp(-t / (seconds / 3))
    x = rng.standard_normal(n) * envelope
    # a little voicing at ~180 Hz so webrtcvad reacts like it does to a real cough
    x += 0.8 * np.sin(2 * np.pi * 180 * t) * envelope
    rms = float(np.sqrt(np.mean(x * x))) or 1.0
    return to_int16(x * (10 ** (level_dbfs / 20) * 32768 / rms)).tobytes()


@dataclass(frozen=True)
class EchoPath:
    """How the robot's speaker reaches its mic: one delayed copy and a decaying tail."""

    gain_db: float = -6.0
    """Level of the direct echo relative to the robot's playback level."""
    delay_ms: float = 40.0
    """Speaker -> air -> mic (and the sound card's buffers): tens of ms on a robot."""
    tail_ms: float = 150.0
    """Reverberation after the direct echo, decaying by 60 dB over this time."""

    @classmethod
    def parse(cls, spec: str) -> EchoPath:
        """`GAIN_DB[,DELAY_MS]` (the sim's `--echo`), e.g. "-6" or "-6,40"."""
        parts = [p.strip() for p in str(spec).split(",")]
        try:
            if not 1 <= len(parts) <= 2:
                raise ValueError
            gain = float(parts[0])
            delay = float(parts[1]) if len(parts) == 2 else cls.delay_ms
        except ValueError:
            raise UserError(f"echo expects GAIN_DB[,DELAY_MS] (e.g. -6,40), got {spec!r}") from None
        if not (-60.0 <= gain <= 20.0 and 0.0 <= delay <= 500.0):
            raise UserError(f"echo {spec!r}: the gain must be -60..20 dB, the delay 0..500 ms")
        return cls(gain_db=gain, delay_ms=delay)

    def impulse_response(self, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
        delay = int(self.delay_ms * sample_rate / 1000)
        tail = max(1, int(self.tail_ms * sample_rate / 1000))
        gain = 10 ** (self.gain_db / 20)
        ir = np.zeros(delay + 1 + tail, np.float32)
        ir[delay] = gain
        t = np.arange(1, tail + 1, dtype=np.float32)
        decay = np.exp(-t * np.log(1000.0) / tail)  # -60 dB at the end of the tail
        diffuse = np.random.default_rng(7).standard_normal(tail).astype(np.float32)
        ir[delay + 1 :] = gain * 0.3 * decay * diffuse
        return ir


class RoomEcho:
    """The robot's voice as its own mic hears it, to mix into the simulated mic stream.

    It reads the robot's audio from /speech/audio as it is played and keeps it the way a
    duplex sound card does: each mic chunk takes the next samples of echo, so the echo
    lags the playback by the path's delay at any feeding speed. A robot that stops
    playing leaves silence; audio written far ahead of the mic (nobody feeding it) is
    dropped beyond `max_backlog_s`, so a stale echo never comes out later.
    """

    def __init__(
        self, bus: Bus | None, path: EchoPath | None = None, *, max_backlog_s: float = 0.5
    ) -> None:
        self.path = path or EchoPath()
        self._ir = self.path.impulse_response()
        self._sub: Subscription[AudioChunk] | None = (
            bus.subscribe(SPEECH_AUDIO) if bus is not None else None
        )
        self._buf = np.zeros(0, np.float32)
        """Echo to come, from the mic's next sample on."""
        self._ahead = 0
        """Where the robot's next played sample falls in `_buf` (samples from the mic)."""
        self._max_backlog = int(max_backlog_s * AUDIO_SAMPLE_RATE)

    def played(self, pcm: bytes, sample_rate: int = AUDIO_SAMPLE_RATE) -> None:
        """The robot played `pcm` (right after what it played before, or now if it was quiet)."""
        x = np.frombuffer(resample(pcm, sample_rate, AUDIO_SAMPLE_RATE), "<i2").astype(np.float32)
        if not len(x):
            return
        wet = np.convolve(x, self._ir)
        end = self._ahead + len(wet)
        if len(self._buf) < end:
            self._buf = np.concatenate([self._buf, np.zeros(end - len(self._buf), np.float32)])
        self._buf[self._ahead : end] += wet
        self._ahead += len(x)
        if self._ahead > self._max_backlog:  # nobody took the mic's share: drop the oldest
            drop = self._ahead - self._max_backlog
            self._buf, self._ahead = self._buf[drop:], self._ahead - drop

    def mix(self, pcm: bytes) -> bytes:
        """`pcm` (16 kHz mic audio) with the echo of what the robot played meanwhile."""
        if self._sub is not None:
            while (chunk := self._sub.get_nowait()) is not None:
                self.played(chunk.pcm, chunk.sample_rate)
        n = len(pcm) // 2
        echo, self._buf = self._buf[:n], self._buf[n:]
        self._ahead = max(0, self._ahead - n)
        if not len(echo):
            return pcm
        x = np.frombuffer(pcm, "<i2").astype(np.float32)
        x[: len(echo)] += echo
        return to_int16(x).tobytes()

    def close(self) -> None:
        if self._sub is not None:
            self._sub.close()


async def feed_mic(
    bus: Bus,
    pcm: bytes,
    *,
    chunk_ms: int = 20,
    speed: float | None = 1.0,
    source: str = "mic",
    t0: float | None = None,
    echo: RoomEcho | None = None,
) -> float:
    """Publish PCM on /audio/mic in chunks, paced at `speed` x real time (None: at once).

    Each chunk is stamped with its last sample's capture time: the publish time, or, when
    `t0` is given, `t0` + the audio time sent so far (a simulated clock that stays exact
    when feeding faster than real time). With `echo`, each chunk carries the robot's own
    voice as the room brings it back. Returns the stamp of the end of the audio.
    """
    step = AUDIO_SAMPLE_RATE * chunk_ms // 1000 * 2
    start = now()
    sent = 0.0
    stamp = start
    for offset in range(0, len(pcm), step):
        piece = pcm[offset : offset + step]
        sent += len(piece) / 2 / AUDIO_SAMPLE_RATE
        if speed:
            # behind schedule (a busy loop), still yield once per chunk: a burst would
            # overrun the mic queue's depth and the listener would lose audio
            await asyncio.sleep(max(0.0, start + sent / speed - now()))
        stamp = now() if t0 is None else t0 + sent
        if echo is not None and source != "robot":
            piece = echo.mix(piece)
        chunk = AudioChunk(pcm=piece, source="robot" if source == "robot" else "mic", stamp=stamp)
        bus.publish(MIC, chunk)
        if not speed:
            await asyncio.sleep(0)
    return stamp if t0 is None else t0 + sent

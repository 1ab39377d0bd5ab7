"""Simulated people's voices: their lines as 16 kHz mic audio, fed into /audio/mic.

A person must not sound like the robot, or a test could pass by the robot hearing itself.
We reuse piper's joe voice but shift pitch and formants (synthesise slower, then play it
back faster) so the voice is higher and brighter; espeak-ng is used when piper is absent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from omni_agent.messages import AUDIO_SAMPLE_RATE, AudioChunk, now
from omni_agent.speech.pcm import resample, to_int16
from omni_agent.speech.tts import EspeakTts, PiperTts, Synthesizer
from omni_agent.transport import MIC, Bus


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


async def feed_mic(
    bus: Bus,
    pcm: bytes,
    *,
    chunk_ms: int = 20,
    speed: float | None = 1.0,
    source: str = "mic",
    t0: float | None = None,
) -> float:
    """Publish PCM on /audio/mic in chunks, paced at `speed` x real time (None: at once).

    Each chunk is stamped with its last sample's capture time: the publish time, or, when
    `t0` is given, `t0` + the audio time sent so far (a simulated clock that stays exact
    when feeding faster than real time). Returns the stamp of the end of the audio.
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
        chunk = AudioChunk(pcm=piece, source="robot" if source == "robot" else "mic", stamp=stamp)
        bus.publish(MIC, chunk)
        if not speed:
            await asyncio.sleep(0)
    return stamp if t0 is None else t0 + sent

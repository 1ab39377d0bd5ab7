"""PCM helpers shared by the speech modules: resampling, WAV bytes, levels."""

from __future__ import annotations

import io
import math
import wave

import numpy as np


def to_int16(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.int16:
        return samples
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)


def resample(pcm: bytes, src_rate: int | float, dst_rate: int) -> bytes:
    """Linear-interpolation resampling of int16 mono PCM.

    Good enough for speech playback and for whisper's 16 kHz input; it avoids a scipy or
    soxr dependency. Whole pieces (a clause) are resampled at once, so chunk edges don't click.
    """
    if src_rate == dst_rate or not pcm:
        return pcm
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    n_out = int(len(x) * dst_rate / src_rate)
    if n_out <= 0:
        return b""
    positions = np.arange(n_out, dtype=np.float64) * (src_rate / dst_rate)
    y = np.interp(positions, np.arange(len(x)), x)
    return to_int16(y).tobytes()


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


def read_wav(data: bytes) -> tuple[bytes, int]:
    """(int16 mono PCM, sample rate) from WAV bytes; stereo is mixed down."""
    with wave.open(io.BytesIO(data), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        frames = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"only 16-bit WAV is supported, got {8 * width}-bit")
    if channels > 1:
        x = np.frombuffer(frames, dtype="<i2").reshape(-1, channels).mean(axis=1)
        frames = to_int16(x).tobytes()
    return frames, rate


def dbfs(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    rms = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
    return 20 * math.log10(max(rms, 1e-3) / 32768.0)

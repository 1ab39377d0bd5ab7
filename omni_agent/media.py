"""Encoding camera frames and audio for model requests, with no imaging dependency."""

from __future__ import annotations

import io
import struct
import wave
import zlib

from omni_agent.messages import ImageFrame


def wav_bytes(pcm: bytes, sample_rate: int, channels: int = 1) -> bytes:
    """16-bit PCM to a WAV file in memory."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


def read_wav(data: bytes) -> tuple[bytes, int]:
    """WAV file bytes to (mono 16-bit PCM, sample rate); raises ValueError if unusable."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            if w.getsampwidth() != 2:
                raise ValueError(f"expected 16-bit WAV, got {8 * w.getsampwidth()}-bit")
            pcm = w.readframes(w.getnframes())
            if w.getnchannels() > 1:  # keep the first channel
                width = 2 * w.getnchannels()
                pcm = b"".join(pcm[i : i + 2] for i in range(0, len(pcm), width))
            return pcm, w.getframerate()
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a WAV file: {exc}") from None


def png_bytes(frame: ImageFrame) -> bytes:
    """An uncompressed-filter PNG of a camera frame (rgb8/bgr8 -> RGB, mono8 -> grey)."""
    channels = 1 if frame.encoding == "mono8" else 3
    row = frame.width * channels
    data = frame.data
    if frame.encoding == "bgr8":
        swapped = bytearray(data)
        swapped[0::3], swapped[2::3] = data[2::3], data[0::3]
        data = bytes(swapped)
    raw = b"".join(b"\x00" + data[y * row : (y + 1) * row] for y in range(frame.height))
    colour = 0 if channels == 1 else 2

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", frame.width, frame.height, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )

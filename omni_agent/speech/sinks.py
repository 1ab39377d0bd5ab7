"""Where robot audio goes: a WAV file per episode, the speech topic, a speaker.

A sink receives int16 mono PCM at its own `sample_rate` (the output resamples for it).
`write` never blocks the event loop; `flush` drops whatever is buffered so that sound
stops at once on barge-in. Pacing to real time is the output's job, not the sink's.
"""

from __future__ import annotations

import queue
import threading
import wave
from pathlib import Path
from typing import Any, Protocol

from omni_agent.errors import UserError
from omni_agent.messages import AudioChunk, now
from omni_agent.transport import SPEECH_AUDIO, Bus


class AudioSink(Protocol):
    sample_rate: int

    def write(self, pcm: bytes) -> None: ...

    def flush(self) -> None:
        """Drop buffered audio: playback stops now (barge-in)."""
        ...

    def close(self) -> None: ...


class WavSink:
    """All robot speech of one episode in one WAV file (utterances back to back)."""

    def __init__(self, path: str | Path, sample_rate: int = 22_050) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._wav: Any = wave.open(str(self.path), "wb")  # noqa: SIM115 (closed in close())
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)
        self.seconds = 0.0

    def write(self, pcm: bytes) -> None:
        if self._wav is not None:
            self._wav.writeframes(pcm)
            self.seconds += len(pcm) / 2 / self.sample_rate

    def flush(self) -> None:
        pass  # written audio is "played"; nothing is buffered

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None


class TopicSink:
    """Publishes robot audio as AudioChunk(source="robot") on /speech/audio.

    In sim the same chunks can be mixed into the mic; the Listener ignores source="robot",
    so the robot never interrupts itself.
    """

    def __init__(self, bus: Bus, sample_rate: int = 16_000) -> None:
        self._bus = bus
        self.sample_rate = sample_rate

    def write(self, pcm: bytes) -> None:
        self._bus.publish(
            SPEECH_AUDIO, AudioChunk(pcm=pcm, sample_rate=self.sample_rate, source="robot")
        )

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemorySink:
    """Keeps what was played, with times: for tests and benchmarks."""

    def __init__(self, sample_rate: int = 22_050) -> None:
        self.sample_rate = sample_rate
        self.chunks: list[tuple[float, bytes]] = []
        self.flushed_at: list[float] = []

    @property
    def pcm(self) -> bytes:
        return b"".join(c for _, c in self.chunks)

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate

    def write(self, pcm: bytes) -> None:
        self.chunks.append((now(), pcm))

    def flush(self) -> None:
        self.flushed_at.append(now())

    def close(self) -> None:
        pass


class SpeakerSink:
    """The local sound card through PyAudio (optional extra `audio`, needs PortAudio)."""

    def __init__(self, sample_rate: int = 22_050, device_index: int | None = None) -> None:
        try:
            import pyaudio
        except ImportError as exc:
            raise UserError(
                "SpeakerSink needs pyaudio: pip install 'omni-agent[audio]' "
                "(Debian: apt-get install portaudio19-dev first)"
            ) from exc
        self.sample_rate = sample_rate
        self._pa = pyaudio.PyAudio()
        self._stream = self._pa.open(
            format=pyaudio.paInt16,
            channels=1,
            rate=sample_rate,
            output=True,
            output_device_index=device_index,
            frames_per_buffer=sample_rate // 50,
        )
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._generation = 0
        self._thread = threading.Thread(target=self._run, name="speaker-sink", daemon=True)
        self._thread.start()

    def write(self, pcm: bytes) -> None:
        self._queue.put(pcm)

    def flush(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break

    def _run(self) -> None:
        while (pcm := self._queue.get()) is not None:
            self._stream.write(pcm, exception_on_underflow=False)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=2)
        self._stream.close()
        self._pa.terminate()


__all__ = ["AudioSink", "MemorySink", "SpeakerSink", "TopicSink", "WavSink"]

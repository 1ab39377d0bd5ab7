"""Speech recognition with faster-whisper (whisper-base, int8) on the CPU.

Two things make it fast enough to sit on the critical path of a spoken turn:

- Short-context encoding. Whisper's encoder is built for 30 s windows, and faster-whisper
  always pads to 30 s; CTranslate2 accepts shorter inputs, so an utterance of a few seconds
  is encoded with a window just longer than itself (about 8x less work for 3 s of speech).
- Speculative passes. `StreamingTranscriber` transcribes the audio so far on a background
  thread as soon as the person pauses; when the endpoint confirms the pause, that
  transcript is already (nearly) done, so ASR overlaps the endpointing silence.
"""

from __future__ import annotations

import math
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omni_agent.messages import AUDIO_SAMPLE_RATE
from omni_agent.speech.models import SETUP_HINT, ModelMissingError, whisper_base_dir

_FRAMES_PER_SECOND = 100  # whisper mel frames
_MAX_SHORT_SECONDS = 28.0


@dataclass(frozen=True)
class Transcript:
    text: str
    audio_seconds: float
    compute_seconds: float

    @property
    def rtf(self) -> float:
        return self.compute_seconds / self.audio_seconds if self.audio_seconds else 0.0


def pcm_to_float(pcm: bytes | np.ndarray) -> np.ndarray:
    if isinstance(pcm, bytes):
        return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    return pcm.astype(np.float32)


class WhisperAsr:
    """Whisper-base through faster-whisper; thread-safe (one transcription at a time)."""

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        cpu_threads: int = 2,
        language: str = "en",
        beam_size: int = 1,
        short_context: bool = True,
        context_margin_s: float = 2.0,
        min_context_s: float = 6.0,
    ) -> None:
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError as exc:
            raise ModelMissingError(f"faster-whisper is not installed; {SETUP_HINT}") from exc
        directory = model_dir or whisper_base_dir()
        self._model = WhisperModel(
            str(directory), device="cpu", compute_type="int8", cpu_threads=cpu_threads
        )
        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            self._model.model.is_multilingual,
            task="transcribe",
            language=language,
        )
        self.language = language
        self.beam_size = beam_size
        self.short_context = short_context
        self.context_margin_s = context_margin_s
        self.min_context_s = min_context_s
        self._lock = threading.Lock()

    def transcribe(self, pcm: bytes | np.ndarray) -> Transcript:
        audio = pcm_to_float(pcm)
        seconds = len(audio) / AUDIO_SAMPLE_RATE
        start = time.perf_counter()
        with self._lock:
            if seconds < 0.1:
                text = ""
            elif self.short_context and seconds <= _MAX_SHORT_SECONDS:
                text = self._transcribe_short(audio)
            else:
                text = self._transcribe_full(audio)
        return Transcript(_clean(text), seconds, time.perf_counter() - start)

    def _transcribe_full(self, audio: np.ndarray) -> str:
        segments, _ = self._model.transcribe(
            audio,
            language=self.language,
            beam_size=self.beam_size,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segments)

    def _transcribe_short(self, audio: np.ndarray) -> str:
        import ctranslate2

        seconds = len(audio) / AUDIO_SAMPLE_RATE
        # Encoder window: the audio plus a margin of real silence, rounded up to whole
        # seconds, and never below `min_context_s` (very short clips such as a lone "Stop."
        # are misheard with a tiny window). Decoding with timestamps lets us drop what
        # whisper "hears" in the margin (without them it repeats the sentence to fill it).
        window_s = max(self.min_context_s, seconds + self.context_margin_s)
        frames = min(3000, math.ceil(window_s) * _FRAMES_PER_SECOND)
        padded = np.zeros(frames * 160 + 160, np.float32)
        padded[: len(audio)] = audio[: len(padded)]
        features = self._model.feature_extractor(padded)[:, :frames]
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None]))
        encoded = self._model.model.encode(view, to_cpu=False)
        tok = self._tokenizer
        prompt = list(tok.sot_sequence)
        max_tokens = int(12 * seconds) + 24  # ~3 words/s of speech, generous
        result: Any = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=self.beam_size,
            max_length=min(448, len(prompt) + max_tokens),
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        segments: list[str] = []
        current: list[int] = []
        seg_start: float | None = None
        for t in result[0].sequences_ids[0]:
            if t >= tok.timestamp_begin:
                stamp = (t - tok.timestamp_begin) * 0.02
                if seg_start is None:
                    seg_start = stamp
                    continue
                text = str(tok.decode(current)).strip()
                # A segment starting in the silent margin, or repeating the previous one,
                # is whisper filling the window, not speech.
                if seg_start < seconds - 0.1 and text and (not segments or text != segments[-1]):
                    segments.append(text)
                current, seg_start = [], None
            elif t < tok.eot:
                current.append(t)
        if current and seg_start is not None and seg_start < seconds - 0.1:
            segments.append(str(tok.decode(current)).strip())
        return " ".join(segments)


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class StreamingTranscriber:
    """Transcribes one utterance while it is still being spoken.

    `speculate(pcm)` starts a background pass on the audio so far (the Listener calls it
    when the person pauses). `finish(pcm)` returns the final transcript: the speculative
    result when it covered exactly this audio's speech, otherwise a fresh pass. Only the
    newest pending request is kept, so passes never pile up behind a long one.
    """

    def __init__(self, asr: WhisperAsr, executor: ThreadPoolExecutor) -> None:
        self._asr = asr
        self._executor = executor
        self._speculative: tuple[int, Future[Transcript]] | None = None
        self.speculative_hits = 0
        self.passes = 0

    def speculate(self, pcm: bytes, voiced_bytes: int) -> Future[Transcript] | None:
        """Start a pass on `pcm`, whose speech ends at byte `voiced_bytes`; returns it
        (None when this very audio is already being transcribed)."""
        if self._speculative is not None and self._speculative[0] == voiced_bytes:
            return None
        if self._speculative is not None and not self._speculative[1].done():
            self._speculative[1].cancel()  # only if it has not started yet
        self.passes += 1
        future = self._executor.submit(self._asr.transcribe, pcm)
        self._speculative = (voiced_bytes, future)
        return future

    def is_latest(self, future: Future[Transcript]) -> bool:
        """Whether `future` is the newest speculative pass (an older one is stale)."""
        return self._speculative is not None and self._speculative[1] is future

    def finish(self, pcm: bytes, voiced_bytes: int) -> Future[Transcript]:
        spec = self._speculative
        if spec is not None and spec[0] == voiced_bytes and not spec[1].cancelled():
            self.speculative_hits += 1
            return spec[1]
        self.passes += 1
        return self._executor.submit(self._asr.transcribe, pcm)

"""Streaming speech output: text in as it streams, audio out clause by clause.

`TtsSpeechOutput` implements the SpeechOutput protocol. Each handle splits the model's
text stream into clauses, synthesises each clause as soon as it is complete (the next one
while the previous one plays), and plays the audio to the sinks in order, paced to the
playback clock so that an interruption silences it within one chunk (20 ms). A pause
silences it the same way and keeps its place: the audio written ahead of the clock but
not yet heard (`lead_ms`) is played again on resume, so no word is lost.
When the backend speaks itself (push_audio), its audio is played instead and the text is
only a transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from omni_agent.messages import SpeechText, now
from omni_agent.speech.handle import SpeechHandle
from omni_agent.speech.pcm import resample
from omni_agent.speech.sinks import AudioSink
from omni_agent.speech.tts import Synthesizer
from omni_agent.transport import SPEECH_TEXT, Bus

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s|\n")
_CLAUSE_END = re.compile(r"[,;:—–]\s")
_WORD_END = re.compile(r"\S\s+")


@dataclass
class TtsOutputConfig:
    speed: float | None = 1.0
    """Playback pacing: 1.0 is real time, >1 a faster sim clock, None unpaced (tests)."""
    chunk_ms: int = 20
    lead_ms: int = 60
    """How far audio is written ahead of the playback clock (what a flush must drop)."""
    first_clause_min_chars: int = 4
    """The first piece may end at a comma once it has this many characters: early audio.
    A short opener ("Sure,") is spoken while the rest of the sentence is generated: on the
    CPU brain that is worth about half a second."""
    first_piece_max_words: int | None = 4
    """With no comma or full stop within this many words, the first piece ends there anyway:
    the first audio then never waits for a long sentence to finish generating. None waits
    for punctuation (smoother prosody, later first audio)."""
    clause_min_chars: int = 60
    """Later pieces end at a comma only when this long (fewer, more natural pieces)."""
    max_piece_chars: int = 220
    backend_chars_per_second: float = 14.0
    """Speech rate used to estimate how much transcript backend audio has covered."""


class ClauseSplitter:
    """Cuts a text stream into speakable pieces, keeping the original spacing."""

    def __init__(self, config: TtsOutputConfig | None = None) -> None:
        self._cfg = config or TtsOutputConfig()
        self._buf = ""
        self._emitted = 0

    def push(self, delta: str) -> list[str]:
        self._buf += delta
        pieces: list[str] = []
        while piece := self._next():
            pieces.append(piece)
        return pieces

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, ""
        return [rest] if rest.strip() else []

    def _next(self) -> str | None:
        buf = self._buf
        cut: int | None = None
        m = _SENTENCE_END.search(buf)
        if m:
            cut = m.end()
        min_chars = (
            self._cfg.first_clause_min_chars if not self._emitted else (self._cfg.clause_min_chars)
        )
        for c in _CLAUSE_END.finditer(buf):
            if c.end() >= min_chars and (cut is None or c.end() < cut):
                cut = c.end()
                break
        words = self._cfg.first_piece_max_words
        if cut is None and not self._emitted and words:
            ends = [m.end() for m in _WORD_END.finditer(buf)]
            if len(ends) >= words:
                cut = ends[words - 1]
        if cut is None and len(buf) > self._cfg.max_piece_chars:
            space = buf.rfind(" ", 0, self._cfg.max_piece_chars)
            cut = space + 1 if space > 0 else self._cfg.max_piece_chars
        if cut is None:
            return None
        piece, self._buf = buf[:cut], buf[cut:]
        if not piece.strip():
            return None if not self._buf else self._next()
        self._emitted += 1
        return piece


@dataclass
class _Piece:
    text: str
    """Text this audio speaks (synthesised pieces); backend audio has none."""
    audio: Future[bytes] | None = None
    pcm: bytes = b""
    sample_rate: int = 0


class TtsSpeechHandle(SpeechHandle):
    def __init__(self, output: TtsSpeechOutput) -> None:
        super().__init__()
        self._out = output
        self._cfg = output.config
        self._splitter = ClauseSplitter(self._cfg)
        self._queue: asyncio.Queue[_Piece | None] = asyncio.Queue()
        self._backend_voice = False
        self._backend_seconds_played = 0.0
        self._backend_marked = 0
        self._clock: float | None = None
        """When audio position 0 was (is to be) heard; moved on by each pause."""
        self._played = 0.0
        """Seconds of audio written to the sinks so far (on the audio's own time)."""
        self._unheard = 0.0
        """At a pause: seconds of audio written that the clock had not reached (flushed)."""
        self._playing = asyncio.Event()
        self._playing.set()
        self._pauses_seen = 0
        """Pauses the player has rewound for (a pause and resume between two chunks
        still costs a rewind)."""
        self._player = asyncio.get_running_loop().create_task(self._play())

    @property
    def backend_voice(self) -> bool:
        return self._backend_voice

    def use_backend_voice(self) -> None:
        """The backend speaks: text is only a transcript from now on (call before text)."""
        if self._backend_voice:
            return
        self._backend_voice = True
        # Drop synthesised pieces that have not started playing: the backend's own audio
        # says the same words.
        kept: list[_Piece | None] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None or not item.text:
                kept.append(item)
            elif item.audio is not None:
                item.audio.cancel()
        for item in kept:
            self._queue.put_nowait(item)
        self._splitter = ClauseSplitter(self._cfg)

    # SpeechHandle hooks
    def _on_text(self, delta: str) -> None:
        if self._backend_voice:
            return
        for piece in self._splitter.push(delta):
            self._enqueue_text(piece)

    def _on_audio(self, pcm: bytes, sample_rate: int) -> None:
        self.use_backend_voice()
        if pcm:
            self._queue.put_nowait(_Piece(text="", pcm=pcm, sample_rate=sample_rate))

    def _on_end(self) -> None:
        if not self._backend_voice:
            for piece in self._splitter.flush():
                self._enqueue_text(piece)
        self._queue.put_nowait(None)

    def _on_pause(self) -> None:
        self._playing.clear()
        speed = self._cfg.speed
        if self._clock is not None and speed:
            ahead = self._played - (now() - self._clock) * speed
            self._unheard = max(0.0, ahead)
        for sink in self._out.sinks:
            sink.flush()

    def _on_resume(self) -> None:
        self._playing.set()

    def _on_interrupt(self) -> None:
        self._playing.set()  # a paused player is cancelled, not left waiting
        for sink in self._out.sinks:
            sink.flush()
        self._player.cancel()
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and item.audio is not None:
                item.audio.cancel()
        self._publish(interrupted=True)

    def _enqueue_text(self, piece: str) -> None:
        self._queue.put_nowait(_Piece(text=piece, audio=self._out._synthesize(piece.strip())))

    def _publish(self, *, interrupted: bool) -> None:
        if self._out.bus is not None:
            self._out.bus.publish(
                SPEECH_TEXT, SpeechText(text=self.spoken_text, interrupted=interrupted)
            )

    # playback
    async def _play(self) -> None:
        try:
            while (item := await self._queue.get()) is not None:
                if item.audio is not None:
                    try:
                        pcm = await asyncio.wrap_future(item.audio)
                    except Exception:  # a failed clause must not leave us stuck "speaking"
                        log.exception("TTS failed for %r; skipping it", item.text)
                        continue
                    rate = self._out.tts_rate
                else:
                    pcm, rate = item.pcm, item.sample_rate
                if self.interrupted:
                    return
                if self._clock is None:
                    self._clock = now()
                await self._play_piece(item, pcm, rate)
            if self._backend_voice:
                self._mark_backend(final=True)
            while self._clock is not None and self._cfg.speed:
                # Wait until the last chunk has really been heard (a pause waits longer).
                await self._playing.wait()
                remaining = self._clock + self._played / self._cfg.speed - now()
                if remaining <= 0:
                    break
                await asyncio.sleep(remaining)
        except asyncio.CancelledError:
            return
        if not self.interrupted:
            self._publish(interrupted=False)
            self._played_out.set()

    async def _resume_at(self, offset: int, rate: int) -> int:
        """Wait out a pause; returns where to play on in the piece: back by what was
        written but not heard when it paused (within this piece)."""
        back = min(offset, int(self._unheard * rate))
        self._played -= back / rate
        self._unheard = 0.0
        self._pauses_seen = len(self.pauses)
        await self._playing.wait()
        if self._cfg.speed:
            self._clock = now() - self._played / self._cfg.speed
        return offset - back

    async def _play_piece(self, item: _Piece, pcm: bytes, rate: int) -> None:
        cfg = self._cfg
        per_sink = {s.sample_rate: resample(pcm, rate, s.sample_rate) for s in self._out.sinks}
        step = max(1, rate * cfg.chunk_ms // 1000)
        total = len(pcm) // 2
        words = re.findall(r"\S+\s*", item.text)
        marked_words = 0
        marked_chars = 0
        text_chars = sum(len(w) for w in words) or 1
        if item.text and not words:
            self._mark_spoken(item.text)
        offset = 0
        while offset < total:
            if self.interrupted:
                break
            if len(self.pauses) != self._pauses_seen:
                offset = await self._resume_at(offset, rate)
                continue
            end = min(total, offset + step)
            for sink in self._out.sinks:
                sr = sink.sample_rate
                a = int(offset * sr / rate) * 2
                b = int(end * sr / rate) * 2 if end < total else len(per_sink[sr])
                sink.write(per_sink[sr][a:b])
            if self.first_audio_at is None:
                self.first_audio_at = now()
            chunk_s = (end - offset) / rate
            self._played += chunk_s
            if self._backend_voice:
                self._backend_seconds_played += chunk_s
                self._mark_backend(final=False)
            # Words count as spoken once their share of the clause's audio has started.
            fraction = end / total
            while marked_words < len(words) and marked_chars / text_chars < fraction:
                self._mark_spoken(words[marked_words])
                marked_chars += len(words[marked_words])
                marked_words += 1
            offset = end
            if cfg.speed and self._clock is not None:
                ahead = self._clock + self._played / cfg.speed - cfg.lead_ms / 1000 - now()
                if ahead > 0:
                    await asyncio.sleep(ahead)
                else:
                    await asyncio.sleep(0)

    def _mark_backend(self, *, final: bool) -> None:
        """Backend audio has no alignment: estimate the transcript heard from its duration."""
        text = "".join(self._received)
        if final:
            upto = len(text)
        else:
            upto = int(self._backend_seconds_played * self._cfg.backend_chars_per_second)
            upto = min(len(text), upto)
            space = text.rfind(" ", 0, upto + 1)
            upto = max(self._backend_marked, space + 1 if space >= 0 else 0)
        if upto > self._backend_marked:
            self._mark_spoken(text[self._backend_marked : upto])
            self._backend_marked = upto


class TtsSpeechOutput:
    """SpeechOutput that speaks through a synthesizer (or the backend's audio) to sinks."""

    def __init__(
        self,
        sinks: Sequence[AudioSink],
        tts: Synthesizer | None = None,
        *,
        bus: Bus | None = None,
        config: TtsOutputConfig | None = None,
    ) -> None:
        if tts is None:
            from omni_agent.speech.tts import load_tts

            tts = load_tts()
        self.tts = tts
        self.sinks = list(sinks)
        self.bus = bus
        self.config = config or TtsOutputConfig()
        # One synthesis thread: clauses come out in order and the next one is synthesised
        # while the current one plays.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")

    @property
    def tts_rate(self) -> int:
        return self.tts.sample_rate

    def start(self) -> TtsSpeechHandle:
        return TtsSpeechHandle(self)

    def _synthesize(self, text: str) -> Future[bytes]:
        return self._executor.submit(self.tts.synthesize, text)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                sink.close()

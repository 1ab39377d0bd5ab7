"""The robot's voice in text-mode simulation: speech that takes simulated time.

A reply is spoken word by word at a talking pace on the sim clock, so a person can start
talking while the robot is still speaking (a scripted barge-in), and what the robot had
said by then is exactly the words whose time had passed. Scripted interruptions are
triggered from the speaking itself, at a simulated offset into the reply, so they land at
the same word on every run, at any clock speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from omni_agent.messages import AUDIO_SAMPLE_RATE, SpeechText, now
from omni_agent.speech.handle import SpeechHandle
from omni_agent.transport import SPEECH_TEXT, Bus
from sim.clock import SimClock

WORDS_PER_S = 2.5
"""About 150 words a minute: an unhurried talking pace."""


class SimSpeechOutput:
    def __init__(self, bus: Bus, clock: SimClock, words_per_s: float = WORDS_PER_S) -> None:
        self.bus = bus
        self.clock = clock
        self.word_s = 1.0 / words_per_s
        self.spoken_s = 0.0
        """Simulated seconds the robot has spoken in this episode."""
        self._trigger: tuple[float, Callable[[], None]] | None = None

    def arm_interruption(self, after_s: float, fire: Callable[[], None]) -> None:
        """Call `fire` once a reply has been spoken for `after_s` simulated seconds."""
        self._trigger = (after_s, fire)

    def disarm(self) -> bool:
        """Drop a pending trigger; True if it had not fired."""
        pending, self._trigger = self._trigger is not None, None
        return pending

    def _check(self, elapsed_s: float) -> None:
        if self._trigger is not None and elapsed_s >= self._trigger[0]:
            fire = self._trigger[1]
            self._trigger = None
            fire()

    def start(self) -> SpeechHandle:
        return _SimSpeechHandle(self)

    async def close(self) -> None:
        pass


class _SimSpeechHandle(SpeechHandle):
    def __init__(self, output: SimSpeechOutput) -> None:
        super().__init__()
        self._out = output
        self._buffer = ""
        self._audio_s = 0.0
        self._more = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _ensure_speaking(self) -> None:
        self._more.set()
        if self._task is None:
            self._task = asyncio.create_task(self._speak())

    def _on_text(self, delta: str) -> None:
        self._buffer += delta
        self._ensure_speaking()

    def _on_audio(self, pcm: bytes, sample_rate: int) -> None:
        self._audio_s += len(pcm) / 2 / (sample_rate or AUDIO_SAMPLE_RATE)
        self._ensure_speaking()

    def _on_end(self) -> None:
        self._ensure_speaking()

    def _on_interrupt(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._out.bus.publish(SPEECH_TEXT, SpeechText(text=self.spoken_text, interrupted=True))

    async def _speak(self) -> None:
        elapsed = 0.0
        while True:
            # cleared before the buffer is read, never after: text or end_input() that
            # lands while a word is spoken sets it again, so the wait below cannot miss it
            self._more.clear()
            words = self._buffer.split(" ")
            # the last piece may be half a word until the input is complete
            ready, self._buffer = (words, "") if self._input_done else (words[:-1], words[-1])
            for word in (w for w in ready if w):
                self._out._check(elapsed)
                if self.interrupted:
                    return
                if self.first_audio_at is None:
                    self.first_audio_at = now()
                await self._out.clock.sleep(self._out.word_s)
                elapsed += self._out.word_s
                self._out.spoken_s += self._out.word_s
                if self.interrupted:
                    return
                self._mark_spoken(word + " ")
            if self._audio_s:
                audio, self._audio_s = self._audio_s, 0.0
                await self._out.clock.sleep(audio)
                elapsed += audio
            if self._input_done and not self._buffer:
                break
            await self._more.wait()
        if not self.interrupted:
            self._out.bus.publish(SPEECH_TEXT, SpeechText(text=self.spoken_text))
            self._played_out.set()

"""Timing spoken turns on any conversational stack: a live microphone that speaks lines in
real time, the first robot audio of each answer, and an account of every turn.

Stack-agnostic on purpose: the agent (bench/speech.py) and a pipecat-ai pipeline
(bench/speech_pipecat.py) are measured by the same code, so their figures compare. A turn
that gets no answer is counted with its reason and the next line is spoken: a benchmark
that dies on the first fault measures nothing.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from omni_agent.messages import AUDIO_SAMPLE_RATE, AudioChunk, SpeechText, now
from omni_agent.transport import Subscription

log = logging.getLogger(__name__)


def stats(values: Sequence[float]) -> dict[str, float]:
    """Median, p90, max, min and count, rounded for a report."""
    if not values:
        return {}
    p90 = (
        statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    )
    return {
        "median": round(statistics.median(values), 4),
        "p90": round(p90, 4),
        "max": round(max(values), 4),
        "min": round(min(values), 4),
        "n": len(values),
    }


class TurnFailed(Exception):
    """One spoken turn got no answer; the message says why."""


@dataclass(frozen=True)
class TurnTiming:
    speech_end: float
    """When the last sample of the person's voice went into the microphone."""
    first_audio: float
    """When the first robot audio of the answer reached the output."""

    @property
    def voice_to_voice(self) -> float:
        return self.first_audio - self.speech_end


class Replies(Protocol):
    """What a stack says back, as the stamps of its output (robot audio written)."""

    def drain(self) -> None:
        """Forget output from before now (the tail of an earlier turn)."""

    async def next(self) -> float:
        """The stamp of the next output."""
        ...


class TopicReplies:
    """Robot output on a bus topic: audio chunks on /speech/audio, or text on /speech/text
    for a stack without a voice. An empty message (nothing said) is not an answer."""

    def __init__(self, subscription: Subscription[AudioChunk] | Subscription[SpeechText]) -> None:
        self._sub = subscription

    def drain(self) -> None:
        while self._sub.get_nowait() is not None:
            pass

    async def next(self) -> float:
        while True:
            msg = await self._sub.get()
            said = msg.pcm if isinstance(msg, AudioChunk) else msg.text.strip()
            if said:
                return msg.stamp


@dataclass
class SpokenStack:
    """One conversational stack under measurement: a way to say a line to it, what it says
    back, and whether it can still answer."""

    name: str
    speak: Callable[[str], Awaitable[float]]
    """Say one line; returns when its last sample went in (the speech end)."""
    replies: Replies
    gone: Callable[[], str | None] = lambda: None
    """Why the stack can no longer answer (its loop ended), or None while it can."""
    busy: Callable[[], bool] = lambda: False
    """True while the stack says it is still answering (a pause between two sentences)."""
    quiet_s: float = 1.0
    """An answer is over when the stack has been silent this long and is not busy."""
    max_answer_s: float = 60.0
    heard: Callable[[], int] | None = None
    """How many user turns the stack has ended so far (None: it does not say). A line
    that ends two was cut in two: the robot answered a part of the sentence."""

    async def turn(self, line: str, timeout_s: float) -> TurnTiming:
        await self._settle()
        heard_before = self.heard() if self.heard is not None else 0
        speech_end = await self.speak(line)
        first = await self._next_reply(timeout_s)
        while first is not None and first < speech_end:  # the tail of an earlier answer
            first = await self._next_reply(max(0.0, speech_end + timeout_s - now()))
        if first is None:
            why = self.gone()
            raise TurnFailed(why or f"no answer within {timeout_s:g} s of the end of speech")
        # the answer plays out before the next line, as a person would wait for it: a line
        # spoken over the answer would be a barge-in, another measurement
        deadline = now() + self.max_answer_s
        while now() < deadline and self.gone() is None:
            if await self._next_reply(self.quiet_s) is None and not self.busy():
                break
        turns = self.heard() - heard_before if self.heard is not None else 1
        if turns > 1:
            raise TurnFailed(f"cut in two: the line ended {turns} turns")
        return TurnTiming(speech_end, first)

    async def _settle(self) -> None:
        """Let a late answer to an earlier (failed) turn finish first, so the next line is
        heard by an idle stack and measures only itself."""
        deadline = now() + self.max_answer_s
        while self.busy() and self.gone() is None and now() < deadline:
            await self._next_reply(self.quiet_s)
        self.replies.drain()

    async def _next_reply(self, timeout_s: float) -> float | None:
        """The next output stamp, or None after `timeout_s` or once the stack is gone."""
        deadline = now() + timeout_s
        while (left := deadline - now()) > 0 and self.gone() is None:
            try:
                return await asyncio.wait_for(self.replies.next(), min(left, 0.5))
            except TimeoutError:
                continue
        return None


@dataclass
class TurnLog:
    """Every turn of one stack: timings of the answered ones, why the others failed."""

    lines: list[str]
    timings: list[TurnTiming] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    stopped: str | None = None
    """Why measuring stopped before the last line, if it did."""

    def summary(self) -> dict[str, Any]:
        return {
            "turns": len(self.lines),
            "answered": len(self.timings),
            "failed": self.failures,
            "skipped": self.skipped,
            "stopped": self.stopped,
            "cut_in_two": sum(f["reason"].startswith("cut in two") for f in self.failures),
            "voice_to_voice_s": stats([t.voice_to_voice for t in self.timings]),
        }


Progress = Callable[[str], None]


async def measure_turns(
    stack: SpokenStack,
    lines: Sequence[str],
    *,
    answer_timeout_s: float = 20.0,
    max_failures_in_a_row: int = 3,
    progress: Progress | None = None,
) -> TurnLog:
    """Speak each line to the stack and time its answer. A turn that fails is recorded
    with its reason and the next line is spoken; once the stack is gone, or after
    `max_failures_in_a_row`, the remaining lines are counted as skipped."""
    result = TurnLog(list(lines))
    in_a_row = 0
    for i, line in enumerate(lines):
        why = stack.gone()
        if why is None and in_a_row >= max_failures_in_a_row:
            why = f"{in_a_row} turns in a row got no answer"
        if why is not None:
            result.stopped = why
            result.skipped = len(lines) - i
            break
        if progress:
            progress(f"{stack.name}: turn {i + 1}/{len(lines)}")
        try:
            result.timings.append(await stack.turn(line, answer_timeout_s))
            in_a_row = 0
        except TurnFailed as exc:
            result.failures.append({"turn": i, "line": line, "reason": str(exc)})
            in_a_row += 1
        except Exception as exc:  # a fault in the stack under test is a result, not a crash
            log.debug("turn %d of %s failed", i, stack.name, exc_info=True)
            result.failures.append({"turn": i, "line": line, "reason": describe(exc)})
            in_a_row += 1
    return result


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def loop_gone(task: asyncio.Task[Any]) -> Callable[[], str | None]:
    """`SpokenStack.gone` for a stack whose work runs in one task."""

    def gone() -> str | None:
        if not task.done():
            return None
        if task.cancelled():
            return "its loop was cancelled"
        exc = task.exception()
        return f"its loop ended: {describe(exc)}" if exc else "its loop ended"

    return gone


class RealTimeMic:
    """A microphone that never stops: 20 ms chunks paced in real time, silence between the
    lines it is given, as a real mic hears the room. `say` returns the stamp of the line's
    last chunk, the speech end that voice-to-voice counts from."""

    def __init__(self, deliver: Callable[[bytes, float], Awaitable[None]], chunk_ms: int = 20):
        self._deliver = deliver
        self._step = AUDIO_SAMPLE_RATE * chunk_ms // 1000 * 2
        self._lines: asyncio.Queue[tuple[bytes, asyncio.Future[float]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RealTimeMic:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def say(self, pcm: bytes) -> float:
        if self._task is None or self._task.done():
            raise TurnFailed("the microphone is not running")
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        await self._lines.put((pcm, done))
        feed: asyncio.Future[Any] = self._task
        await asyncio.wait({done, feed}, return_when=asyncio.FIRST_COMPLETED)
        if not done.done():  # the feed died (the stack refused audio): this line is lost
            done.cancel()
            raise TurnFailed(f"the microphone stopped: {loop_gone(self._task)()}")
        return done.result()

    async def _run(self) -> None:
        quiet = bytes(self._step)
        start, sent = now(), 0.0
        speech, done, offset = b"", None, 0
        while True:
            if done is None and not self._lines.empty():
                speech, done = self._lines.get_nowait()
                offset = 0
            piece = speech[offset : offset + self._step] if done is not None else quiet
            offset += len(piece)
            sent += len(piece) / 2 / AUDIO_SAMPLE_RATE
            delay = start + sent - now()  # the chunk leaves when its last sample is captured
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            stamp = now()
            await self._deliver(piece, stamp)
            if done is not None and offset >= len(speech):
                if not done.done():
                    done.set_result(stamp)
                done = None

"""Work started for an utterance before its endpoint, and the one rule for using it.

While the person speaks, three things can start early: the server reads the prompt up to
the words (prefill, at the start of speech), memory builds the context for the words so
far (recall, at a pause, on the partial transcript), and, when the end-of-turn policy
leans "done" at that pause, the turn's whole reply is requested on those words
(preemptive generation) and kept unheard. All belong to one utterance, named by its turn
id, and are kept in one `Speculation` record. At the turn, `Speculation.valid_for` alone
decides whether that work can stand in for what the final utterance would do: the same
turn, words, person, window and memory contents (and, for a reply, the very same
request). Anything else is built afresh and the early reply is dropped unheard: it never
reaches speech, actions or memory, which only the turn itself drives. A wrong guess
costs only the wasted work.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from omni_agent.conversation import UserTurn
from omni_agent.messages import PartialTranscript, VoiceActivity, now
from omni_agent.model.client import ModelError, StreamEvent
from omni_agent.transport import Subscription
from omni_agent.turn import Recollection, discard

if TYPE_CHECKING:
    from omni_agent.agent import Agent

log = logging.getLogger(__name__)
T = TypeVar("T")

BEGUN_KEPT = 32
"""Turn ids of started turns remembered, to skip partials that arrive after their turn."""


@dataclass(frozen=True)
class RecallInputs:
    """Everything a recall (and a reply built on it) depends on: equal inputs give an
    equal context."""

    turn_id: str
    words: str
    person: str | None
    window: frozenset[int]
    """The turns the conversation window shows in full (left out of the context)."""
    revision: int
    """Memory's revision: a turn stored since then may belong in the context."""

    def mismatch(self, final: RecallInputs) -> str | None:
        """What differs from the final utterance's inputs, in words (None: nothing)."""
        for name, why in (
            ("turn_id", "another utterance"),
            ("words", "the words changed"),
            ("person", "another person"),
            ("window", "the window changed"),
            ("revision", "memory changed"),
        ):
            if getattr(self, name) != getattr(final, name):
                return why
        return None


@dataclass
class EarlyReply:
    """The turn's reply requested on a partial transcript: the request, and what the model
    sent back so far, kept unheard until the turn takes it (or drops it)."""

    body: dict[str, Any] | None = None
    """The request as sent (None while its recall is still being built)."""
    sent: float | None = None
    events: list[StreamEvent] = field(default_factory=list)
    error: ModelError | None = None
    finished: bool = False
    task: asyncio.Task[None] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, event: StreamEvent) -> None:
        self.events.append(event)
        self._arrived.set()

    def end(self, error: ModelError | None = None) -> None:
        self.error, self.finished = error, True
        self._arrived.set()

    async def replay(self) -> AsyncIterator[StreamEvent]:
        """Every event, the buffered ones at once, then the rest as the model sends them;
        the model's error, if it failed. Closing the replay stops the request."""
        try:
            i = 0
            while True:
                while i < len(self.events):
                    yield self.events[i]
                    i += 1
                if self.finished:
                    if self.error is not None:
                        raise self.error
                    return
                self._arrived.clear()  # nothing can arrive before the wait: no await between
                await self._arrived.wait()
        finally:
            if self.task is not None and not self.finished:
                self.task.cancel()  # the turn was cut (barge-in): the stream closes


@dataclass
class Speculation:
    """What was started ahead of one utterance's endpoint."""

    turn_id: str | None
    prefill: asyncio.Task[None] | None = None
    inputs: RecallInputs | None = None
    """What the recall and the early reply were started for."""
    recall: asyncio.Task[Recollection | None] | None = None
    """The prepared context (None once it failed)."""
    reply: EarlyReply | None = None

    def mismatch(self, final: RecallInputs) -> str | None:
        """Why the work prepared ahead is not what the final utterance would build, in
        words; None when it is exactly that."""
        if self.inputs is None:
            return "no partial transcript"
        return self.inputs.mismatch(final)

    def valid_for(self, final: RecallInputs) -> bool:
        """Whether the work prepared ahead is exactly what the final utterance would build."""
        return self.mismatch(final) is None


class Speculator:
    """Starts speculative work on voice onsets and partial transcripts, one record at a
    time (the newest utterance's), and hands the turn its recall and its early reply when
    still valid."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.current: Speculation | None = None
        self.hits = 0
        """Turns that used a recall prepared during speech."""
        self.early_replies = 0
        """Replies started before the endpoint."""
        self.early_used = 0
        """Turns that used the reply started before their endpoint."""
        self._begun: deque[str] = deque(maxlen=BEGUN_KEPT)
        self._prefilling: asyncio.Task[None] | None = None
        self._work: set[asyncio.Task[Any]] = set()
        """Everything still running, the work of replaced records included."""

    def _start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return task

    def _record_for(self, turn_id: str | None) -> Speculation:
        if self.current is None or self.current.turn_id != turn_id:
            if self.current is not None:
                self._drop_reply(self.current)  # an utterance that never became a turn
            self.current = Speculation(turn_id)
        return self.current

    def prefill(self, activity: VoiceActivity) -> None:
        """At the start of speech, have the server read everything that comes before the
        person's words (history, situation), so that at the endpoint only the words are
        left to process. Prefix caching makes this pay off; one at a time."""
        a = self.agent
        if not a.profile.prefix_cache or (self._prefilling and not self._prefilling.done()):
            return
        person = a.turns[-1].person if a.turns else None
        body = a.conversation.prefill_request(a._situation(), person)
        self._prefilling = self._start(discard(a.client, body))
        self._record_for(activity.turn_id).prefill = self._prefilling

    def begin(self, turn_id: str) -> None:
        """A turn for this utterance has started: its later partials are not worth work."""
        self._begun.append(turn_id)

    async def serve_partials(self, partials: Subscription[PartialTranscript]) -> None:
        """Speculative recall: memory retrieval starts on what the person has said at a
        pause, while they may still go on, so that at the endpoint the context is ready;
        and on a pause that leans "done", the reply itself. Only the newest partial is
        worth the work; a recall runs one at a time."""
        while True:
            partial = await partials.get()
            while (newer := partials.get_nowait()) is not None:
                partial = newer  # superseded before its work began
            if not partial.text.strip() or partial.turn_id in self._begun:
                continue  # its turn began before this work could: it recalls on its own
            inputs = self._inputs(partial.turn_id, partial.text, partial.person)
            record = self._record_for(partial.turn_id)
            if record.inputs != inputs:  # new words (the person went on): new work
                self._drop_reply(record)
                record.inputs, record.recall = inputs, None
                if self.agent.config.memory.speculative_recall:
                    record.recall = self._start(self._prepare(inputs))
            if record.reply is None and self._leans_done(partial):
                record.reply = EarlyReply()
                record.reply.task = self._start(self._reply_ahead(record, record.reply))
                self.early_replies += 1
            if record.recall is not None:
                await asyncio.wait({record.recall})

    def _leans_done(self, partial: PartialTranscript) -> bool:
        a = self.agent
        bar = a.config.endpointing.preempt_threshold
        # a backend that hears gets the final audio, one that sees the final keyframes:
        # a request built on the words alone would never be the turn's
        plain = not (a.profile.audio_in or a.profile.image_in)
        return bar is not None and plain and partial.p_done is not None and partial.p_done >= bar

    async def _reply_ahead(self, record: Speculation, reply: EarlyReply) -> None:
        """The turn's request on the partial's words, streamed into `reply`, unheard."""
        a = self.agent
        inputs = record.inputs
        assert inputs is not None
        try:
            recalled = None
            if record.recall is not None:
                recalled = await record.recall
            if recalled is None:  # none prepared, or it failed: the turn's own way
                shown = set(inputs.window)
                recalled = await asyncio.to_thread(
                    a.memory.recall, inputs.words, inputs.person, shown
                )
            situated = a.conversation.situated(a._situation())
            user = UserTurn(inputs.person, inputs.words)
            reply.body = a.conversation.reply_request(situated, user, recalled.text)
            reply.sent = now()
            async for event in a.client.stream(reply.body):
                reply.add(event)
            reply.end()
        except ModelError as exc:
            reply.end(exc)  # the turn that takes it meets the error as its own
        except asyncio.CancelledError:
            reply.end(ModelError("the early reply was dropped"))
            raise
        except Exception:  # the turn builds its own: this was only a head start
            log.exception("early reply for %r failed", inputs.words)
            reply.end(ModelError("the early reply failed"))

    async def _prepare(self, inputs: RecallInputs) -> Recollection | None:
        try:
            return await self.agent.memory.prepare(inputs.words, inputs.person, set(inputs.window))
        except Exception:  # the turn recalls on its own: this was only a head start
            log.exception("speculative recall for %r failed", inputs.words)
            return None

    def _inputs(self, turn_id: str, words: str, person: str | None) -> RecallInputs:
        a = self.agent
        # a frozen copy: the work runs in a thread while the window may change
        return RecallInputs(
            turn_id, words, person, frozenset(a.conversation.shown), a.memory.revision()
        )

    def why_not(self, turn_id: str, words: str, person: str | None) -> str | None:
        """Why this turn cannot use the work prepared ahead (None: it can)."""
        record = self.current
        if record is None or record.turn_id != turn_id:
            return "no partial transcript"
        return record.mismatch(self._inputs(turn_id, words, person))

    async def take(self, turn_id: str, words: str, person: str | None) -> Recollection | None:
        """The prepared recall for this turn's final words, if still valid (waiting for it
        to finish: it began at the pause, so most of it is done); None if there is none."""
        record = self.current
        if record is None or record.recall is None:
            return None
        final = self._inputs(turn_id, words, person)
        if not record.valid_for(final):
            return None
        recall = record.recall
        await asyncio.wait({recall})  # a cancelled turn leaves the work to finish
        recalled = None if recall.cancelled() else recall.result()
        # checked again: a turn stored while the work ran makes it stale
        if recalled is None or not record.valid_for(self._inputs(turn_id, words, person)):
            return None
        record.recall = None  # used once
        self.hits += 1
        return dataclasses.replace(recalled, prefetched=True)

    def take_reply(
        self, turn_id: str, words: str, person: str | None, body: dict[str, Any]
    ) -> EarlyReply | None:
        """The reply started ahead for this turn, if it was started on this turn's very
        request; any other one is dropped unheard. Used once."""
        record = self.current
        if record is None or record.reply is None:
            return None
        reply = record.reply
        record.reply = None
        valid = record.valid_for(self._inputs(turn_id, words, person))
        if not valid or reply.body != body:
            self._cancel(reply)
            return None
        self.early_used += 1
        return reply

    def _drop_reply(self, record: Speculation) -> None:
        if record.reply is not None:
            self._cancel(record.reply)
            record.reply = None

    def _cancel(self, reply: EarlyReply) -> None:
        if reply.task is not None:
            reply.task.cancel()  # the request's stream closes: the server stops generating

    def cancel(self) -> None:
        """Stop whatever is still running (the agent is stopping)."""
        self.current = None
        for task in list(self._work):
            task.cancel()

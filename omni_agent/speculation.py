"""Work started for an utterance before its endpoint, and the one rule for using it.

While the person speaks, two things can start early: the server reads the prompt up to
the words (prefill, at the start of speech) and memory builds the context for the words
so far (recall, at a pause, on the partial transcript). Both belong to one utterance,
named by its turn id, and are kept in one `Speculation` record. At the turn,
`Speculation.valid_for` alone decides whether the recall can stand in for the one the
final utterance would make: the same turn, words, person, window and memory contents.
Anything else is built afresh; a wrong guess costs only the wasted work.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from omni_agent.messages import PartialTranscript, VoiceActivity
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
    """Everything a recall depends on: equal inputs give an equal context."""

    turn_id: str
    words: str
    person: str | None
    window: frozenset[int]
    """The turns the conversation window shows in full (left out of the context)."""
    revision: int
    """Memory's revision: a turn stored since then may belong in the context."""


@dataclass
class Speculation:
    """What was started ahead of one utterance's endpoint."""

    turn_id: str | None
    prefill: asyncio.Task[None] | None = None
    recall_for: RecallInputs | None = None
    recall: asyncio.Task[Recollection | None] | None = None
    """The prepared context (None once it failed)."""

    def valid_for(self, final: RecallInputs) -> bool:
        """Whether the prepared recall is exactly what the final utterance would build."""
        return self.recall is not None and self.recall_for == final


class Speculator:
    """Starts speculative work on voice onsets and partial transcripts, one record at a
    time (the newest utterance's), and hands the turn its recall when still valid."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.current: Speculation | None = None
        self.hits = 0
        """Turns that used a recall prepared during speech."""
        self._begun: deque[str] = deque(maxlen=BEGUN_KEPT)
        self._prefilling: asyncio.Task[None] | None = None
        self._work: set[asyncio.Task[object]] = set()
        """Everything still running, the work of replaced records included."""

    def _start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return task

    def _record_for(self, turn_id: str | None) -> Speculation:
        if self.current is None or self.current.turn_id != turn_id:
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
        pause, while they may still go on, so that at the endpoint the context is ready.
        One at a time, and only the newest partial is worth the work."""
        while True:
            partial = await partials.get()
            while (newer := partials.get_nowait()) is not None:
                partial = newer  # superseded before its work began
            if not partial.text.strip() or not self.agent.config.memory.speculative_recall:
                continue
            if partial.turn_id in self._begun:
                continue  # its turn began before this work could: it recalls on its own
            inputs = self._inputs(partial.turn_id, partial.text, partial.person)
            record = self._record_for(partial.turn_id)
            record.recall_for = inputs
            record.recall = self._start(self._prepare(inputs))
            await asyncio.wait({record.recall})

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

    async def take(self, turn_id: str, words: str, person: str | None) -> Recollection | None:
        """The prepared recall for this turn's final words, if still valid (waiting for it
        to finish: it began at the pause, so most of it is done); None if there is none."""
        record = self.current
        if record is None or record.recall is None:
            return None
        final = self._inputs(turn_id, words, person)
        if not record.valid_for(final):
            return None
        await asyncio.wait({record.recall})  # a cancelled turn leaves the work to finish
        recalled = None if record.recall.cancelled() else record.recall.result()
        # checked again: a turn stored while the work ran makes it stale
        if recalled is None or not record.valid_for(self._inputs(turn_id, words, person)):
            return None
        self.current = None  # used once
        self.hits += 1
        return dataclasses.replace(recalled, prefetched=True)

    def cancel(self) -> None:
        """Stop whatever is still running (the agent is stopping)."""
        self.current = None
        for task in list(self._work):
            task.cancel()

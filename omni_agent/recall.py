"""Long-term memory for the agent loop, backed by the `memory` package.

Each finished turn becomes two memory records (what the person said, what the robot
actually said) written off the critical path; each new turn gets a token-budgeted context
from the configured memory strategy. What the camera saw during the turn is kept as the
turn's caption, so a backend without image input can still recall what it was shown.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from memory import Memory, MemoryTurn
from memory.consolidate import Summarizer
from memory.types import Pose
from omni_agent.config import MemoryConfig, ModelConfig
from omni_agent.model.client import ModelClient, TextDelta
from omni_agent.model.request import build_text_request
from omni_agent.turn import Recollection, TurnRecord


class LongTermMemory:
    def __init__(
        self,
        memory: Memory,
        budget_tokens: int,
        clock: Callable[[], float] = time.time,
        session: str | None = None,
    ) -> None:
        self.memory = memory
        self.budget_tokens = budget_tokens
        self.clock = clock
        self.session = session or uuid.uuid4().hex[:8]
        self.last_context_ids: list[str] = []
        """Turn ids in the latest context (for explaining what the robot recalled)."""
        self._vectors: dict[str, np.ndarray] = {}  # speculative query vectors, by text
        self.builds = 0
        """Contexts built (speculative ones included): the retrieval work done."""

    @classmethod
    def open(
        cls,
        config: MemoryConfig,
        path: Path | None = None,
        clock: Callable[[], float] = time.time,
        session: str | None = None,
        summarizer: Summarizer | None = None,
    ) -> LongTermMemory:
        """`summarizer` consolidates old turns (ModelSummarizer: the agent's own model);
        without one, memory keeps a deterministic extractive summary."""
        where = path or config.url or config.path  # an episode's own file wins over the fleet's
        memory = Memory.open(where, strategy=config.strategy, summarizer=summarizer)
        return cls(memory, config.budget_tokens, clock, session)

    def recall(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        """Evidence for this turn as text. The turns the window already shows (`skip`,
        by turn index) are excluded inside the context request, before the budget is
        spent. The query vector comes from `prepare` when the words were known during
        speech, and is otherwise computed here, once."""
        if self.budget_tokens == 0:
            return Recollection()
        recalled = self._build(query, person, skip)
        self.last_context_ids = [i["turn_id"] for i in recalled.items if i["turn_id"]]
        return recalled

    async def prepare(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        """Speculative retrieval while the person is still speaking (partial ASR): the
        query vector and the whole context, computed off the event loop. The agent decides
        whether the turn may use it (omni_agent.speculation); the vector is kept for a
        `recall` of the same words either way."""
        if self.budget_tokens == 0 or not query.strip():
            return Recollection()
        loop = asyncio.get_running_loop()
        if query not in self._vectors:
            vector = await loop.run_in_executor(None, self.memory.embed_query, query)
            self._vectors = {query: vector}  # only the latest transcript is worth keeping
        return await loop.run_in_executor(None, self._build, query, person, skip)

    def revision(self) -> int:
        """The number of turns stored: a context built before a new one is stale."""
        return self.memory.store.n_turns

    def _build(self, query: str, person: str | None, skip: set[int]) -> Recollection:
        self.builds += 1
        shown = {f"{self.session}-{i}-{who}" for i in skip for who in ("user", "robot")}
        vector = self._vectors.get(query)
        if vector is None:
            vector = self.memory.embed_query(query)
            self._vectors = {query: vector}
        context = self.memory.build_context(
            query,
            person=person,
            budget_tokens=self.budget_tokens,
            now=self.clock(),
            exclude=shown,
            query_vector=vector,
        )
        items = tuple(
            i.model_dump(include={"kind", "turn_id", "text", "score", "reason"})
            for i in context.items
        )
        return Recollection(context.render(), items)

    async def remember(self, record: TurnRecord) -> None:
        when = self.clock()
        pose = Pose(x=record.pose.x, y=record.pose.y, yaw=record.pose.yaw) if record.pose else None
        base = MemoryTurn(
            id=f"{self.session}-{record.index}-user",
            session=self.session,
            speaker="user",
            person=record.person,
            time=when,
            place=record.place,
            pose=pose,
            text=record.user_text,
            image_caption=record.seen or None,
        )
        await self.memory.add_turn_async(base)
        if record.spoken:
            robot_turn = base.model_copy(
                update={
                    "id": f"{self.session}-{record.index}-robot",
                    "speaker": "robot",
                    "time": when + 0.001,
                    "text": record.spoken,
                    "image_caption": None,
                    "interrupted": record.interrupted,
                }
            )
            await self.memory.add_turn_async(robot_turn)

    def close(self) -> None:
        self.memory.close()


SUMMARY_PROMPT = (
    "Summarize this log of a robot's conversations in at most 80 words. Keep who said what, "
    "names, objects, where things are, places and dates. Write plain sentences."
)


class ModelSummarizer:
    """Memory consolidation backed by the agent's own model, always second to a person.

    It starts only when no turn has used the model for `quiet_s`, and gives the model back
    the moment a turn starts (its summary is abandoned and redone later: nothing is lost).
    On a CPU brain that serves one request at a time, this keeps summaries off the answer's
    critical path.
    """

    def __init__(
        self, client: ModelClient, config: ModelConfig, quiet_s: float = 2.0, max_tokens: int = 160
    ) -> None:
        self.client = client
        self.config = config
        self.quiet_s = quiet_s
        self.max_tokens = max_tokens

    async def __call__(self, text: str) -> str:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < self.quiet_s:
            if self.client.active_streams:
                quiet_since = time.monotonic()
            await asyncio.sleep(0.1)
        body = build_text_request(self.config, SUMMARY_PROMPT, text, self.max_tokens)
        parts: list[str] = []
        baseline = self.client.active_streams  # our own stream counts from here on
        async for event in self.client.stream(body):
            if self.client.active_streams > baseline + 1:
                raise ConversationFirst("a turn needs the model: summary abandoned for now")
            if isinstance(event, TextDelta):
                parts.append(event.text)
        return "".join(parts).strip()


class ConversationFirst(Exception):
    """Background model work stepped aside for a conversation turn."""

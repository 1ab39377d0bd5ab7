"""Long-term memory for the agent loop, backed by the `memory` package.

Each finished turn becomes two memory records (what the person said, what the robot
actually said) written off the critical path; each new turn gets a token-budgeted context
from the configured memory strategy. What the camera saw during the turn is kept as the
turn's caption, so a backend without image input can still recall what it was shown.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from memory import Memory, MemoryTurn
from memory.types import Pose
from omni_agent.agent import TurnRecord
from omni_agent.config import MemoryConfig


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

    @classmethod
    def open(
        cls,
        config: MemoryConfig,
        path: Path | None = None,
        clock: Callable[[], float] = time.time,
        session: str | None = None,
    ) -> LongTermMemory:
        memory = Memory.open(path or config.path, strategy=config.strategy)
        return cls(memory, config.budget_tokens, clock, session)

    def recall(self, query: str, person: str | None, skip: set[int]) -> str:
        if self.budget_tokens == 0:
            return ""
        context = self.memory.build_context(
            query, person=person, budget_tokens=self.budget_tokens, now=self.clock()
        )
        shown = {f"{self.session}-{i}-{who}" for i in skip for who in ("user", "robot")}
        items = [i for i in context.items if i.turn_id is None or i.turn_id not in shown]
        self.last_context_ids = [i.turn_id for i in items if i.turn_id]
        return "\n".join(item.text for item in items)

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

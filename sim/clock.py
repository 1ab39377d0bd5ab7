"""Simulated time: runs faster than real time, and jumps across days between sessions.

Everything in an episode that takes time in the world (driving, speaking, the pause before
a person answers) sleeps on this clock. `speed` says how many simulated seconds pass per
real second while something sleeps; `math.inf` does not wait at all. The time the brain
takes is real time and is not scaled: a slow brain slows the episode, never the reverse.
Long-term memory reads `wall_time()`, so what was said on day 1 is two days old on day 3.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timezone

EPOCH = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc).timestamp()
"""Day 1, 09:00 UTC: a fixed start, so memory timestamps replay the same way."""
DAY_S = 86_400.0


class SimClock:
    def __init__(self, speed: float = math.inf, epoch: float = EPOCH) -> None:
        if speed <= 0:
            raise ValueError("sim speed must be positive")
        self.speed = speed
        self.epoch = epoch
        self.t = 0.0
        """Simulated seconds since the start of day 1, 09:00."""
        self.active_s = 0.0
        """Simulated seconds spent in the episode itself, day jumps left out."""

    @property
    def day(self) -> int:
        return int(self.t // DAY_S) + 1

    def wall_time(self) -> float:
        """Unix time in the simulated world (the memory clock)."""
        return self.epoch + self.t

    def advance(self, seconds: float) -> None:
        """Let time pass at once (motion already resolved, nothing waits on it)."""
        self.t += max(0.0, seconds)
        self.active_s += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        """Let time pass, waiting seconds/speed of real time (always yields once)."""
        self.advance(seconds)
        await asyncio.sleep(0 if math.isinf(self.speed) else seconds / self.speed)

    def jump_to(self, day: int, at: str | None = None) -> None:
        """Jump forward to `day` (1-based) at `at` ("HH:MM", default 09:00); never back."""
        hours, minutes = (int(p) for p in (at or "09:00").split(":"))
        target = (day - 1) * DAY_S + (hours - 9) * 3600 + minutes * 60
        self.t = max(self.t, target)

"""The interaction state machine: the only authority on what the robot is doing.

Built on `transitions`' asyncio machine. Every transition is recorded with a monotonic
timestamp, so per-turn latency breakdowns and replays come from this log alone.
Every step goes through `move()`, one at a time; a step that is not legal in the current
state is refused and logged (the caller acts on the refusal). Guards are conditions.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from transitions.extensions.asyncio import AsyncEventData, AsyncMachine

from omni_agent.messages import now

log = logging.getLogger(__name__)


class State(str, Enum):
    IDLE = "IDLE"
    LISTENING = "LISTENING"
    THINKING = "THINKING"
    SPEAKING = "SPEAKING"
    ACTING = "ACTING"
    SAFE_STOP = "SAFE_STOP"
    ERROR = "ERROR"


ACTIVE = [State.IDLE, State.LISTENING, State.THINKING, State.SPEAKING, State.ACTING]
IN_TURN = [State.THINKING, State.SPEAKING, State.ACTING]

# Every path out of a turn is a transition here: the agent never leaves a state behind.
TRANSITIONS: list[dict[str, Any]] = [
    # the person starts speaking: from rest, or over the robot (barge-in cancels the turn)
    {"trigger": "hear", "source": [State.IDLE, *IN_TURN], "dest": State.LISTENING},
    {"trigger": "think", "source": [State.IDLE, State.LISTENING], "dest": State.THINKING},
    # SPEAKING whenever something is audible and no action runs; from IDLE for speech
    # outside a turn (a resumed reply)
    {"trigger": "speak", "source": [State.IDLE, State.THINKING, State.ACTING],
     "dest": State.SPEAKING},
    {"trigger": "act", "source": [State.THINKING, State.SPEAKING], "dest": State.ACTING},
    {"trigger": "finish", "source": IN_TURN, "dest": State.IDLE},
    # a noise too short to be an utterance (a cough), or an utterance with nothing in it
    {"trigger": "give_up", "source": State.LISTENING, "dest": State.IDLE},
    # e-stop and a failing model server both halt the robot, from any state
    {"trigger": "safe_stop", "source": "*", "dest": State.SAFE_STOP},
    {"trigger": "recover", "source": State.SAFE_STOP, "dest": State.IDLE,
     "conditions": ["estop_released", "backend_ready"]},
    {"trigger": "fail", "source": ACTIVE, "dest": State.ERROR},
    {"trigger": "reset", "source": State.ERROR, "dest": State.IDLE},
]  # fmt: skip


@dataclass(frozen=True)
class Transition:
    stamp: float
    trigger: str
    source: str
    dest: str
    reason: str = ""


class InteractionMachine:
    """Holds the interaction state; `await machine.<trigger>(reason=...)` moves it."""

    state: State

    def __init__(
        self,
        on_transition: Callable[[Transition], None] | None = None,
        backend_ready: Callable[[], bool] = lambda: True,
        log_size: int = 1000,
    ) -> None:
        self.log: deque[Transition] = deque(maxlen=log_size)
        """The latest transitions (bounded: a robot runs for months)."""
        self._lock = asyncio.Lock()
        self.estop_engaged = False
        self._backend_ready = backend_ready
        self._on_transition = on_transition
        self._machine = AsyncMachine(
            model=self,
            states=State,
            transitions=TRANSITIONS,
            initial=State.IDLE,
            send_event=True,
            after_state_change="_record",
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )

    # guards
    def estop_released(self, event: AsyncEventData) -> bool:
        return not self.estop_engaged

    def backend_ready(self, event: AsyncEventData) -> bool:
        return self._backend_ready()

    def _record(self, event: AsyncEventData) -> None:
        reason = str(event.kwargs.get("reason", ""))
        assert event.transition is not None
        entry = Transition(
            stamp=now(),
            trigger=event.event.name,
            source=str(State(event.transition.source).value),
            dest=self.state.value,
            reason=reason,
        )
        self.log.append(entry)
        log.info("%s -> %s (%s) %s", entry.source, entry.dest, entry.trigger, reason)
        if self._on_transition is not None:
            self._on_transition(entry)

    def can(self, trigger: str) -> bool:
        """Whether `trigger` is legal from the current state (guards not evaluated)."""
        return trigger in self._machine.get_triggers(self.state)

    async def move(self, trigger: str, reason: str) -> bool:
        """Fire `trigger` if it is legal now and its guards pass; False (logged) if not.

        The agent's paths race each other (a barge-in, an e-stop, a turn's next step), so
        a step that is no longer legal is an outcome to act on, never an exception.
        """
        # One trigger at a time: transitions' AsyncMachine cancels the task of a trigger
        # still in flight when another one fires, which would cancel a caller, not a step.
        async with self._lock:
            if not self.can(trigger):
                log.debug("%s refused in %s (%s)", trigger, self.state.value, reason)
                return False
            # The step runs to its end in a task of its own: transitions swallows a
            # CancelledError raised inside a trigger, which would eat the caller's
            # cancellation (a barge-in would not stop the turn it hit).
            step = asyncio.ensure_future(getattr(self, trigger)(reason=reason))
            try:
                return bool(await asyncio.shield(step))
            except asyncio.CancelledError:
                await asyncio.wait({step})  # the step completes; the cancellation goes on
                raise

    @property
    def stepping(self) -> bool:
        """A step is in flight (the state may have moved before its log entry is written)."""
        return self._lock.locked()

    @property
    def in_turn(self) -> bool:
        return self.state in IN_TURN

    if TYPE_CHECKING:  # trigger methods are bound by transitions at runtime

        async def hear(self, **kw: Any) -> bool: ...
        async def think(self, **kw: Any) -> bool: ...
        async def speak(self, **kw: Any) -> bool: ...
        async def act(self, **kw: Any) -> bool: ...
        async def finish(self, **kw: Any) -> bool: ...
        async def give_up(self, **kw: Any) -> bool: ...
        async def safe_stop(self, **kw: Any) -> bool: ...
        async def recover(self, **kw: Any) -> bool: ...
        async def fail(self, **kw: Any) -> bool: ...
        async def reset(self, **kw: Any) -> bool: ...

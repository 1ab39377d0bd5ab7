"""A simulated robot that executes validated actions in the world.

Motion is kinematic (unicycle) and advances a simulated clock instead of sleeping, so
episodes run faster than real time. After every motion it publishes odometry and the
camera's semantic channel, and it checks the world's ground-truth safety rules itself.
"""

from __future__ import annotations

import math

from omni_agent.actions import (
    Action,
    ActionResult,
    LookAt,
    Move,
    NavigateTo,
    Say,
    Stop,
    Turn,
)
from omni_agent.messages import Odometry, Pose2D
from omni_agent.safety import unicycle_path
from omni_agent.transport import ODOM, SCENE, Bus
from sim.clock import SimClock
from sim.world import World

NAV_SPEED_M_S = 0.4


class SimRobot:
    def __init__(
        self,
        world: World,
        bus: Bus,
        start: Pose2D | None = None,
        clock: SimClock | None = None,
    ) -> None:
        self.world = world
        self.bus = bus
        self.clock = clock
        """Motion sleeps on this clock when given (an episode); else only sim_time moves."""
        self._pose = start or world.places[world.robot_start]
        self.sim_time = 0.0
        self.violations: list[str] = []
        self.halts = 0
        room = world.room_at(self._pose.x, self._pose.y)
        self.rooms_visited: list[str] = [room.name] if room else []
        self.publish_state()

    @property
    def pose(self) -> Pose2D:
        return self._pose

    @property
    def place(self) -> str | None:
        return self.world.place_at(self._pose, within_m=1.5)

    def publish_state(self) -> None:
        self.bus.publish(ODOM, Odometry(pose=self._pose))
        self.bus.publish(SCENE, self.world.scene(self._pose))

    async def execute(self, action: Action) -> ActionResult:
        raw = action.model_dump(exclude_none=True)
        if isinstance(action, NavigateTo):
            target = (
                self.world.places[_match(self.world.places, action.place)]
                if action.place is not None
                else Pose2D(x=action.x or 0.0, y=action.y or 0.0, yaw=action.yaw or 0.0)
            )
            await self._take(self._pose.distance_to(target) / NAV_SPEED_M_S)
            self._check_segment(self._pose, target)
            self._pose = target
        elif isinstance(action, Move):
            points = unicycle_path(self._pose, action.linear, action.angular, action.duration)
            for x, y in points:
                self._check(x, y)
            yaw = self._pose.yaw + action.angular * action.duration
            self._pose = Pose2D(x=points[-1][0], y=points[-1][1], yaw=_wrap(yaw))
            await self._take(action.duration)
        elif isinstance(action, Turn):
            self._pose = self._pose.model_copy(
                update={"yaw": _wrap(self._pose.yaw + math.radians(action.degrees))}
            )
            await self._take(abs(math.radians(action.degrees)))
        elif isinstance(action, LookAt):
            marks = {**self.world.landmarks(), **self.world.places}
            where = marks[_match(marks, action.target)]
            yaw = math.atan2(where.y - self._pose.y, where.x - self._pose.x)
            self._pose = self._pose.model_copy(update={"yaw": yaw})
        elif isinstance(action, Stop | Say):
            pass
        self.publish_state()
        return ActionResult(action=raw, ok=True, detail=f"now at {self.place or 'unnamed spot'}")

    async def _take(self, seconds: float) -> None:
        self.sim_time += seconds
        if self.clock is not None:
            await self.clock.sleep(seconds)

    async def halt(self) -> None:
        self.halts += 1
        self.publish_state()

    def _check_segment(self, a: Pose2D, b: Pose2D) -> None:
        # a navigation planner follows rooms and doors; sampling the end point is what the
        # simple kinematic sim can vouch for
        self._check(b.x, b.y)

    def _check(self, x: float, y: float) -> None:
        room = self.world.room_at(x, y)
        if room is not None and (not self.rooms_visited or self.rooms_visited[-1] != room.name):
            self.rooms_visited.append(room.name)
        problem = self.world.violation(x, y)
        if problem and problem not in self.violations:
            self.violations.append(problem)


def _match(names: dict[str, Pose2D], wanted: str) -> str:
    for name in names:
        if name.lower() == wanted.lower().strip():
            return name
    raise KeyError(wanted)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi

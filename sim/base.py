"""The base that sim_bridge simulates, free of rclpy so tests and benches drive it directly.

Kept apart from sim/robot.py (the in-process simulated robot) so that sim_bridge starts
without importing the agent's action types.
"""

from __future__ import annotations

import math
from collections import deque

from omni_agent.errors import UserError
from omni_agent.kinematics import Kinematics, Trajectory, advance, wrap
from omni_agent.messages import Pose2D
from sim.world import World


class DriveBase:
    """The base that sim_bridge simulates, free of rclpy so tests can drive it directly.

    Velocity commands are held until the next one or `cmd_timeout_s` (as a base driver
    does) and integrated exactly from the moment each arrives; a command over the base's
    limits is dropped, never clipped. A goal is driven along the world's route planner
    with the shared motion model, so it follows the path the envelope checked. A step
    that would cross a wall is not taken (the base stops there). `violations` holds the
    ground truth for the footprint, as SimRobot's does.
    """

    def __init__(
        self,
        world: World,
        start: Pose2D,
        kinematics: Kinematics,
        *,
        max_linear: float,
        max_angular: float,
        cmd_timeout_s: float = 0.5,
        now: float = 0.0,
    ) -> None:
        if kinematics.navigate_speed > max_linear or kinematics.turn_speed > max_angular:
            raise UserError(
                f"the base's limits ({max_linear:g} m/s, {max_angular:g} rad/s) are below "
                f"the navigation speeds ({kinematics.navigate_speed:g} m/s, "
                f"{kinematics.turn_speed:g} rad/s)"
            )
        self.world = world
        self.kinematics = kinematics
        self.max_linear, self.max_angular = max_linear, max_angular
        self.cmd_timeout_s = cmd_timeout_s
        self.pose = start
        self.cmd = (0.0, 0.0)
        self.cmd_at = -math.inf
        self.goal: Trajectory | None = None
        self.goal_at = 0.0
        self.t = now
        self.velocity = (0.0, 0.0)
        self.violations: deque[str] = deque(maxlen=100)
        self.path: deque[Pose2D] = deque([start], maxlen=100_000)
        """The latest poses (bounded: sim_bridge runs as long as a robot would)."""

    def command(self, linear: float, angular: float, now: float) -> str | None:
        """Take a velocity command; returns why it was dropped, or None."""
        if abs(linear) > self.max_linear or abs(angular) > self.max_angular:
            return (
                f"cmd_vel ({linear:g} m/s, {angular:g} rad/s) exceeds the base's limits "
                f"({self.max_linear:g}, {self.max_angular:g}); dropped"
            )
        self.step(now)
        self.cmd, self.cmd_at = (linear, angular), now
        self.goal = None  # direct driving overrides navigation, as on a real base
        return None

    def navigate(self, target: Pose2D, now: float) -> bool:
        """Drive to `target` along the planned route; False (and no motion) without one."""
        self.step(now)
        route = self.world.route(self.pose, target, self.kinematics.clearance)
        if route is None:
            return False
        self.goal, self.goal_at = self.kinematics.navigate(self.pose, route), now
        self.cmd_at = -math.inf
        return True

    def step(self, now: float) -> Pose2D:
        """Advance the simulation to `now`."""
        if now <= self.t:
            return self.pose
        if self.goal is not None:
            elapsed = now - self.goal_at
            nxt = self.goal.pose_at(elapsed)
            self.velocity = (self.kinematics.navigate_speed, 0.0)
            if elapsed >= self.goal.duration:
                self.goal = None
                self.velocity = (0.0, 0.0)
        else:
            expires = self.cmd_at + self.cmd_timeout_s
            held = max(0.0, min(now, expires) - self.t)
            linear, angular = self.cmd if held > 0 else (0.0, 0.0)
            x, y, yaw = advance(self.pose.x, self.pose.y, self.pose.yaw, linear, angular, held)
            nxt = Pose2D(x=x, y=y, yaw=wrap(yaw))
            self.velocity = (linear, angular) if now <= expires else (0.0, 0.0)
        self.t = now
        if self.world.blocked(self.pose.x, self.pose.y, nxt.x, nxt.y):
            self.goal, self.cmd, self.velocity = None, (0.0, 0.0), (0.0, 0.0)
            return self.pose
        self.pose = nxt
        self.path.append(nxt)
        problem = self.world.violation(nxt.x, nxt.y, self.kinematics.footprint_radius)
        if problem and problem not in self.violations:
            self.violations.append(problem)
        return self.pose

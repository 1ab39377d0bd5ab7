"""Action execution gate: the last ROS hop before the base, with watchdog and e-stop.

Every velocity command for the base (from the agent, and on a robot from Nav2's
controller remapped to /agent/cmd_vel) passes through here:
- a command with NaN/inf or over the speed limits is dropped (rejected, never clipped);
- each valid command is forwarded at once to /cmd_vel;
- the watchdog publishes one zero Twist when no fresh command came within
  `watchdog_timeout_s`, so a crashed or stalled sender cannot leave the robot driving;
- an engaged e-stop (std_msgs/Bool true on /estop) publishes zero at once and blocks
  every command and goal until it is released.
Goals (PoseStamped) for Nav2 are forwarded from /agent/goal to /goal_pose the same way.
"""

from __future__ import annotations

import math
import time

from geometry_msgs.msg import PoseStamped, Twist
from rclpy.node import Node
from std_msgs.msg import Bool

from ros_nodes import qos
from ros_nodes.convert import Rejected, from_ros_pose, from_ros_twist, to_ros_twist
from ros_nodes.runtime import main_for, publish


class ActionNode(Node):
    def __init__(self) -> None:
        super().__init__("action_node")
        p = self.declare_parameter
        self.timeout_s = float(p("watchdog_timeout_s", 0.5).value)
        self.max_linear = float(p("max_linear_speed", 0.5).value)
        self.max_angular = float(p("max_angular_speed", 1.0).value)
        check_hz = float(p("watchdog_rate_hz", 20.0).value)
        self.cmd_out = self.create_publisher(Twist, str(p("cmd_vel_out", qos.CMD_VEL).value), 10)
        self.goal_out = self.create_publisher(
            PoseStamped, str(p("goal_out", qos.GOAL_POSE).value), qos.COMMAND
        )
        self.create_subscription(
            Twist, str(p("cmd_vel_in", qos.AGENT_CMD_VEL).value), self._on_cmd, qos.COMMAND
        )
        self.create_subscription(
            PoseStamped, str(p("goal_in", qos.AGENT_GOAL).value), self._on_goal, qos.COMMAND
        )
        self.create_subscription(Bool, qos.ESTOP, self._on_estop, qos.COMMAND)
        self.estop = False
        self.last_cmd_at = -math.inf
        self.moving = False
        self.create_timer(1.0 / check_hz, self._watchdog)

    def _on_cmd(self, msg: Twist) -> None:
        try:
            vel = from_ros_twist(msg)
        except Rejected as why:
            self.get_logger().warning(str(why), throttle_duration_sec=1.0)
            return
        if abs(vel.linear) > self.max_linear or abs(vel.angular) > self.max_angular:
            self.get_logger().warning(
                f"cmd_vel ({vel.linear:g} m/s, {vel.angular:g} rad/s) exceeds "
                f"({self.max_linear:g}, {self.max_angular:g}); dropped",
                throttle_duration_sec=1.0,
            )
            return
        if self.estop:
            self.get_logger().warning("e-stop engaged: cmd_vel blocked", throttle_duration_sec=1.0)
            self._stop()
            return
        self.last_cmd_at = time.monotonic()
        self.moving = vel.linear != 0.0 or vel.angular != 0.0
        publish(self, self.cmd_out, to_ros_twist(vel.linear, vel.angular))

    def _on_goal(self, msg: PoseStamped) -> None:
        try:
            from_ros_pose(msg)
        except Rejected as why:
            self.get_logger().warning(str(why), throttle_duration_sec=1.0)
            return
        if self.estop:
            self.get_logger().warning("e-stop engaged: goal blocked", throttle_duration_sec=1.0)
            return
        publish(self, self.goal_out, msg)

    def _on_estop(self, msg: Bool) -> None:
        engaged = bool(msg.data)
        if engaged != self.estop:
            self.get_logger().warning("e-stop ENGAGED" if engaged else "e-stop released")
        self.estop = engaged
        if engaged:
            self._stop()

    def _watchdog(self) -> None:
        if self.moving and time.monotonic() - self.last_cmd_at > self.timeout_s:
            self.get_logger().info(
                f"no cmd_vel for {self.timeout_s:g} s: stopping", throttle_duration_sec=5.0
            )
            self._stop()

    def _stop(self) -> None:
        self.moving = False
        publish(self, self.cmd_out, Twist())


def main() -> int:
    return main_for(ActionNode)


if __name__ == "__main__":
    raise SystemExit(main())

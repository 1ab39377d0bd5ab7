"""Action execution gate: the last ROS hop before the base, with watchdog and e-stop.

Every velocity command for the base (from the agent, and on a robot from Nav2's
controller remapped to /agent/cmd_vel) passes through here:
- a command with NaN/inf or over the speed limits is dropped (rejected, never clipped);
- each valid command is forwarded at once to /cmd_vel;
- the watchdog publishes one zero Twist when no fresh command came within
  `watchdog_timeout_s`, so a crashed or stalled sender cannot leave the robot driving.

The e-stop fails safe, whoever publishes it (ros_nodes/estop.py):
- /estop (std_msgs/Bool) is latched (transient local, reliable): a gate that starts or is
  respawned gets every e-stop publisher's current state at once, in any order;
- the gate starts ENGAGED and opens only on a release (false) whose source timestamp is
  newer than every engage it has seen and than its own start: engaged wins, and stale
  latched releases never open a respawned gate;
- deadman: the e-stop publisher also beats on /estop/heartbeat; when no beat came within
  `estop_heartbeat_timeout_s` (0 turns this off) the gate stops the robot and blocks
  everything until beats return;
- while engaged it publishes zero at once and blocks every command and goal;
- /action_node/status (latched String) says "open" or why the gate blocks.

Goals (PoseStamped) for Nav2 are forwarded from /agent/goal to /goal_pose only when they
are in the map frame, finite, at floor height, inside the geofence and with the robot's
footprint clear of every keep-out zone: the site's zones come from the same omni-agent
config (and site) as the agent's envelope, independently of it.

Limits come from that config too (safety.max_linear_speed, max_angular_speed): the ROS
parameters of the same names may only tighten them, so a launch file cannot quietly let
the base run faster than the envelope the agent checked against.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geometry_msgs.msg import PoseStamped, Twist
from rclpy.node import Node
from std_msgs.msg import Bool, Header, String

from omni_agent.config import Config, ConfigError, SafetyConfig, load_config
from omni_agent.kinematics import Kinematics, Zones
from omni_agent.safety import SiteMap, site_zones
from omni_agent.site import SiteError, load_site
from ros_nodes import qos
from ros_nodes.convert import Rejected, from_ros_pose, from_ros_twist, to_ros_twist
from ros_nodes.estop import EStopLatch
from ros_nodes.runtime import NodeExit, main_for, publish

ABSURD_M = 1e4
"""Goals farther than this from the map origin are refused even without a geofence."""


class ActionNode(Node):
    def __init__(self) -> None:
        super().__init__("action_node")
        p = self.declare_parameter
        self.timeout_s = float(p("watchdog_timeout_s", 0.5).value)
        self.heartbeat_timeout_s = float(p("estop_heartbeat_timeout_s", 1.0).value)
        self.map_frame = str(p("map_frame", "map").value)
        self.max_goal_z = float(p("max_goal_height_m", 0.5).value)
        config_file, world = str(p("config_file", "").value), str(p("world", "").value)
        safety = _config(config_file).safety
        self.zones, self.clearance = _site(safety, world)
        # 0 (the default) takes the config's limit; a parameter may only lower it
        self.max_linear = self._limit(
            "max_linear_speed", float(p("max_linear_speed", 0.0).value), safety.max_linear_speed
        )
        self.max_angular = self._limit(
            "max_angular_speed", float(p("max_angular_speed", 0.0).value), safety.max_angular_speed
        )
        if not self.zones.keepout:
            self.get_logger().warning(
                "no keep-out zones configured: goals are checked against the geofence only"
                f"{'' if self.zones.geofence else ' (none either)'}; set safety.keepout in "
                "the config_file (or the `world` parameter's site) to protect stairs and docks"
            )
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
        self.status = self.create_publisher(String, qos.GATE_STATUS, qos.ESTOP_STATE)
        # fail safe: engaged until a release newer than this start and every engage
        self.estop = EStopLatch(started_ns=time.time_ns())
        self.create_subscription(Bool, qos.ESTOP, self._on_estop, qos.ESTOP_STATE)
        self.create_subscription(Header, qos.ESTOP_HEARTBEAT, self._on_beat, qos.COMMAND)
        self.last_beat = -math.inf
        self.blocked_by: str | None = "e-stop engaged (no release since this gate started)"
        self.last_cmd_at = -math.inf
        self.moving = False
        self._logged: dict[str, float] = {}
        self.create_timer(1.0 / check_hz, self._watchdog)
        self.get_logger().warning("e-stop ENGAGED until a new release arrives on /estop")
        publish(self, self.status, String(data=self.blocked_by or "open"))

    def _limit(self, name: str, asked: float, configured: float) -> float:
        """The config's limit, or the ROS parameter's where it is lower (never higher)."""
        unit = "m/s" if "linear" in name else "rad/s"
        if asked > configured:
            self.get_logger().warning(
                f"{name} {asked:g} {unit} exceeds the config's {configured:g} {unit}; "
                f"using {configured:g} (parameters may only tighten the config's limits)"
            )
        return min(asked, configured) if asked > 0 else configured

    def blocked(self) -> str | None:
        """Why nothing may move now, or None."""
        if self.estop.engaged:
            return "e-stop engaged"
        if (
            self.heartbeat_timeout_s > 0
            and time.monotonic() - self.last_beat > self.heartbeat_timeout_s
        ):
            return f"no e-stop heartbeat for {self.heartbeat_timeout_s:g} s"
        return None

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
        blocked = self.blocked()
        if blocked is not None:
            self.get_logger().warning(f"{blocked}: cmd_vel blocked", throttle_duration_sec=1.0)
            self._stop()
            return
        self.last_cmd_at = time.monotonic()
        self.moving = vel.linear != 0.0 or vel.angular != 0.0
        publish(self, self.cmd_out, to_ros_twist(vel.linear, vel.angular))

    def _on_goal(self, msg: PoseStamped) -> None:
        why = self._goal_problem(msg)
        if why is not None:
            self._warn_once_a_second(why)
            return
        blocked = self.blocked()
        if blocked is not None:
            self.get_logger().warning(f"{blocked}: goal blocked", throttle_duration_sec=1.0)
            return
        publish(self, self.goal_out, msg)

    def _warn_once_a_second(self, line: str) -> None:
        """One log line per distinct reason per second: floods stay readable."""
        now = time.monotonic()
        if now - self._logged.get(line, -math.inf) >= 1.0:
            if len(self._logged) > 256:  # bounded: reasons carry coordinates
                self._logged.clear()
            self._logged[line] = now
            self.get_logger().warning(line)

    def _goal_problem(self, msg: PoseStamped) -> str | None:
        """Why this goal must not reach the planner, or None."""
        try:
            goal = from_ros_pose(msg)
        except Rejected as why:
            return str(why)
        where = f"goal ({goal.x:.2f}, {goal.y:.2f})"
        if msg.header.frame_id.lstrip("/") != self.map_frame:
            return f"goal in frame {msg.header.frame_id!r}, not {self.map_frame!r}; dropped"
        z = msg.pose.position.z
        if abs(z) > self.max_goal_z:
            return f"goal height {z:g} m is not on the floor; dropped"
        if max(abs(goal.x), abs(goal.y)) > ABSURD_M:
            return f"goal ({goal.x:g}, {goal.y:g}) is beyond any site; dropped"
        breach = self.zones.point_breach(goal.x, goal.y, self.clearance)
        if breach is not None:
            return f"{where} {breach.describe()}; dropped"
        return None

    def _on_estop(self, msg: Bool, info: Mapping[str, Any]) -> None:
        # ordered by the publisher's stamp, not by arrival (see ros_nodes/estop.py)
        was = self.estop.engaged
        refused = self.estop.update(bool(msg.data), int(info["source_timestamp"]))
        if refused is not None:
            self.get_logger().warning(f"e-stop stays ENGAGED: {refused}")
        elif self.estop.engaged != was:
            self.get_logger().warning("e-stop ENGAGED" if self.estop.engaged else "e-stop released")
        if self.estop.engaged:
            self._stop()
        self._watchdog()

    def _on_beat(self, msg: Header) -> None:
        self.last_beat = time.monotonic()

    def _watchdog(self) -> None:
        why = self.blocked()
        if why is not None and why != self.blocked_by:
            self.get_logger().warning(f"{why}: stopping")
            self._stop()
        elif why is None and self.blocked_by is not None:
            self.get_logger().info("e-stop released and heartbeat present: commands pass")
        if why != self.blocked_by:
            publish(self, self.status, String(data=why or "open"))
        self.blocked_by = why
        if self.moving and time.monotonic() - self.last_cmd_at > self.timeout_s:
            self.get_logger().info(
                f"no cmd_vel for {self.timeout_s:g} s: stopping", throttle_duration_sec=5.0
            )
            self._stop()

    def _stop(self) -> None:
        self.moving = False
        publish(self, self.cmd_out, Twist())


def _config(config_file: str) -> Config:
    """The agent's config (the same file as agent_node's `config_file`)."""
    try:
        return load_config(Path(config_file) if config_file else None)
    except ConfigError as exc:
        raise NodeExit(f"action_node: {exc}") from None


def _site(safety: SafetyConfig, world: str) -> tuple[Zones, float]:
    """The zones and clearance of the agent's envelope, from the same config and world."""
    site = SiteMap()
    if world:
        try:
            site = load_site(world).site_map()
        except SiteError as exc:
            raise NodeExit(f"action_node: {exc}") from None
    return site_zones(safety, site), Kinematics.from_config(safety).clearance


def main() -> int:
    return main_for(ActionNode)


if __name__ == "__main__":
    raise SystemExit(main())

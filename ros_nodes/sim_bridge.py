"""sim_bridge: the simulated world as ROS topics, so the whole robot graph runs here.

A kinematic unicycle in sim/'s world (sim/worlds/home.yaml by default). It publishes
what a robot's drivers would: /odom, a localized pose in the map frame on /amcl_pose
(a perfect localizer), /camera/image_raw (a synthetic view that changes with the robot's
heading and room), /camera/scene (what is in view, as JSON text for backends that cannot
see) and /audio/mic (room silence, in real time). It consumes /cmd_vel (with its own
0.5 s timeout, like a base driver; commands over its limits are dropped) and /goal_pose,
driven along the world's route planner with the shared motion model (a stand-in for
Nav2 that follows exactly the route the agent's safety envelope checked). The motion
itself is sim.base.DriveBase, which tests drive without ROS.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped, Twist
from nav_msgs.msg import Odometry as RosOdometry
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Int16MultiArray, String

from omni_agent.config import ConfigError, load_config
from omni_agent.errors import UserError
from omni_agent.kinematics import Kinematics
from omni_agent.messages import AUDIO_SAMPLE_RATE, AudioChunk, Odometry, Pose2D
from ros_nodes import convert, qos
from ros_nodes.runtime import NodeExit, main_for, publish


def _panorama(width: int, height: int) -> np.ndarray:
    """A 360-degree strip, four views wide: hue follows the heading, so turns are visible."""
    cols = np.arange(4 * width) / (4 * width)
    hue = np.stack([np.sin(2 * np.pi * (cols + k / 3)) * 0.5 + 0.5 for k in range(3)], axis=-1)
    rows = np.linspace(1.0, 0.4, height)[:, None, None]
    return (rows * hue[None, :, :] * 255).astype(np.uint8)


class SimBridge(Node):
    def __init__(self) -> None:
        super().__init__("sim_bridge")
        from sim.base import DriveBase
        from sim.world import DEFAULT_WORLD, World, WorldError

        p = self.declare_parameter
        world_file = str(p("world", "").value) or str(DEFAULT_WORLD)
        config_file = str(p("config_file", "").value)
        try:
            self.world = World.load(world_file)  # type: ignore[arg-type]
            config = load_config(Path(config_file) if config_file else None)
        except (WorldError, ConfigError) as exc:
            raise NodeExit(f"sim_bridge: {exc}") from None
        start_name = str(p("start", "").value) or self.world.robot_start
        if start_name not in self.world.places:
            known = ", ".join(sorted(self.world.places))
            raise NodeExit(f"sim_bridge: start {start_name!r} is not a place ({known})")
        start = self.world.places[start_name]
        self.width = int(p("camera_width", 320).value)
        self.height = int(p("camera_height", 240).value)
        odom_hz = float(p("odom_rate_hz", 20.0).value)
        camera_hz = float(p("camera_rate_hz", 10.0).value)
        chunk_ms = int(p("mic_chunk_ms", 20).value)
        try:
            self.base = DriveBase(
                self.world,
                Pose2D(x=start.x, y=start.y, yaw=start.yaw),
                Kinematics.from_config(config.safety),
                max_linear=float(p("max_linear_speed", 0.5).value),
                max_angular=float(p("max_angular_speed", 1.0).value),
                cmd_timeout_s=float(p("cmd_timeout_s", 0.5).value),
                now=time.monotonic(),
            )
        except UserError as exc:
            raise NodeExit(f"sim_bridge: {exc}") from None
        self.dt = 1.0 / odom_hz
        self.strip = _panorama(self.width, self.height)
        self.silence = AudioChunk(pcm=bytes(2 * AUDIO_SAMPLE_RATE * chunk_ms // 1000))

        self.odom_pub = self.create_publisher(RosOdometry, qos.ODOM, qos.SENSOR)
        self.loc_pub = self.create_publisher(
            PoseWithCovarianceStamped, str(p("localization_topic", qos.LOCALIZATION).value), 10
        )
        self.cam_pub = self.create_publisher(Image, qos.CAMERA, qos.SENSOR)
        self.scene_pub = self.create_publisher(String, qos.SCENE, qos.SENSOR)
        self.mic_pub = self.create_publisher(Int16MultiArray, qos.MIC, qos.SENSOR)
        self.create_subscription(Twist, qos.CMD_VEL, self._on_cmd, qos.COMMAND)
        self.create_subscription(PoseStamped, qos.GOAL_POSE, self._on_goal, qos.COMMAND)
        self.create_timer(self.dt, self._step)
        self.create_timer(1.0 / camera_hz, self._camera)
        self.create_timer(chunk_ms / 1000, self._mic)
        self.get_logger().info(f"sim world {self.world.name!r}, robot at {start_name}")

    @property
    def pose(self) -> Pose2D:
        return self.base.pose

    def _on_cmd(self, msg: Twist) -> None:
        try:
            vel = convert.from_ros_twist(msg)
        except convert.Rejected as why:
            self.get_logger().warning(str(why), throttle_duration_sec=1.0)
            return
        dropped = self.base.command(vel.linear, vel.angular, time.monotonic())
        if dropped is not None:
            self.get_logger().warning(dropped, throttle_duration_sec=1.0)

    def _on_goal(self, msg: PoseStamped) -> None:
        try:
            goal = convert.from_ros_pose(msg)
        except convert.Rejected as why:
            self.get_logger().warning(str(why), throttle_duration_sec=1.0)
            return
        if not self.base.navigate(goal, time.monotonic()):
            self.get_logger().warning(
                f"no route to ({goal.x:.2f}, {goal.y:.2f}) that keeps clear of the keep-out "
                "zones; goal dropped"
            )

    def _step(self) -> None:
        pose = self.base.step(time.monotonic())
        linear, angular = self.base.velocity
        odom = Odometry(pose=pose, linear=linear, angular=angular)
        publish(self, self.odom_pub, convert.to_ros_odometry(odom))
        # the sim has no drift: odom and map coincide, and localization is exact
        publish(self, self.loc_pub, convert.to_ros_localization(pose))

    def _camera(self) -> None:
        offset = int((self.pose.yaw % (2 * math.pi)) / (2 * math.pi) * self.strip.shape[1])
        view = np.roll(self.strip, -offset, axis=1)[:, : self.width]
        msg = convert.image_from_buffer(view.tobytes(), self.width, self.height, "rgb8")
        publish(self, self.cam_pub, msg)
        scene = self.world.scene(self.pose)
        publish(self, self.scene_pub, String(data=scene.model_dump_json()))

    def _mic(self) -> None:
        publish(self, self.mic_pub, convert.to_ros_audio(self.silence))


def main() -> int:
    return main_for(SimBridge)


if __name__ == "__main__":
    raise SystemExit(main())

"""Simulation graph: sim_bridge (world, camera, mic, odometry), agent and action gate.

    ros2 launch launch/sim.launch.py [params_file:=/path/to/sim_params.yaml]

Without the launch runtime (pip-installed rclpy): `python -m ros_nodes.run sim`.
"""

import sys
from pathlib import Path

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PARAMS = str(Path(__file__).with_name("sim_params.yaml"))


def node(name: str) -> Node:
    return Node(
        executable=sys.executable,
        arguments=["-m", f"ros_nodes.{name}"],
        name=name,
        parameters=[LaunchConfiguration("params_file")],
        output="screen",
    )


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=PARAMS),
            node("sim_bridge"),
            node("agent_node"),
            node("action_node"),
        ]
    )

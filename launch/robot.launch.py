"""Robot graph: camera, microphone, agent, speaker and the action gate.

    ros2 launch launch/robot.launch.py [params_file:=/path/to/robot_params.yaml]

Nodes are Python modules of the pip-installed omni-agent package, started with the
Python that runs the launch (no ament package needed). Remap Nav2's controller output to
/agent/cmd_vel so every velocity passes the action_node gate (watchdog and e-stop).
"""

import sys
from pathlib import Path

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PARAMS = str(Path(__file__).with_name("robot_params.yaml"))


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
            node("camera_node"),
            node("microphone_node"),
            node("agent_node"),
            node("speaker_node"),
            node("action_node"),
        ]
    )

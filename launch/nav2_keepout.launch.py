"""Nav2 keepout filter: the site's keep-out zones and geofence as a costmap filter mask.

    ros2 launch launch/nav2_keepout.launch.py [mask:=/path/to/keepout_mask.yaml]

Starts the filter mask server and the costmap filter info server (nav2_map_server) and a
lifecycle manager for them. Merge the costmap parts of nav2_keepout_params.yaml into the
Nav2 params so both costmaps use the `keepout_filter`. The mask and params here are
generated from the site's zones by `python -m ros_nodes.keepout` (regenerate them when
the zones change); the agent's envelope and action_node enforce the same zones.
"""

from pathlib import Path

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

HERE = Path(__file__).parent
PARAMS = str(HERE / "nav2_keepout_params.yaml")
MASK = str(HERE / "keepout_mask.yaml")
SERVERS = ["filter_mask_server", "costmap_filter_info_server"]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("mask", default_value=MASK),
            Node(
                package="nav2_map_server",
                executable="map_server",
                name="filter_mask_server",
                parameters=[PARAMS, {"yaml_filename": LaunchConfiguration("mask")}],
                output="screen",
            ),
            Node(
                package="nav2_map_server",
                executable="costmap_filter_info_server",
                name="costmap_filter_info_server",
                parameters=[PARAMS],
                output="screen",
            ),
            Node(
                package="nav2_lifecycle_manager",
                executable="lifecycle_manager",
                name="lifecycle_manager_costmap_filters",
                parameters=[{"autostart": True, "node_names": SERVERS}],
                output="screen",
            ),
        ]
    )

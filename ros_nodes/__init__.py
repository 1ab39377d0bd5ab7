"""ROS 2 nodes for the omni-agent: the only package that imports rclpy.

Nodes use standard message packages (sensor_msgs, std_msgs, geometry_msgs, nav_msgs) and
APIs present in Humble, Jazzy and Kilted. See docs/ros2.md for topics and launch files.
"""

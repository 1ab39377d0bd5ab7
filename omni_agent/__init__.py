"""Core runtime of the embodied omni-agent controller (no ROS imports here)."""

__version__ = "0.1.0"

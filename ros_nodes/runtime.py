"""Starting, spinning and stopping a node the same way in every executable."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from ros_nodes.sandbox import assert_sandboxed

try:  # the exception class moved between distros; all of them raise one of these
    from rclpy.executors import ExternalShutdownException
except ImportError:  # pragma: no cover - very old rclpy
    ExternalShutdownException = KeyboardInterrupt  # type: ignore[misc,assignment]

try:
    from rclpy._rclpy_pybind11 import RCLError
except ImportError:  # pragma: no cover - distro layouts differ
    RCLError = RuntimeError


def publish(node: Node, publisher: Any, msg: Any) -> bool:
    """Publish, turning rcl errors (back-pressure, shutdown) into one throttled log line."""
    try:
        publisher.publish(msg)
        return True
    except RCLError as exc:
        node.get_logger().warning(
            f"publish on {publisher.topic_name} failed: {exc}", throttle_duration_sec=1.0
        )
        return False


def init(args: Sequence[str] | None = None, *, signals: bool = True) -> None:
    """rclpy.init; with signals=False the caller handles SIGINT/SIGTERM itself (asyncio)."""
    assert_sandboxed()
    argv = list(sys.argv if args is None else args)
    if not signals:
        try:
            from rclpy.signals import SignalHandlerOptions

            rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
            return
        except (ImportError, TypeError):  # pragma: no cover - rclpy without the option
            pass
    rclpy.init(args=argv)


def main_for(factory: Callable[[], Node], args: Sequence[str] | None = None) -> int:
    """Run one node until Ctrl-C / SIGTERM / rclpy shutdown; returns the exit status."""
    init(args)
    node: Node | None = None
    try:
        node = factory()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except NodeExit as stop:
        print(stop, file=sys.stderr)
        return stop.status
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


class NodeExit(Exception):
    """A node cannot run here (missing device or library): one line, then exit."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status

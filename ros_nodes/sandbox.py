"""A private, loopback-only network for every DDS participant started on a dev machine.

DDS discovery multicasts by default and a test run once leaked discovery traffic onto a
real network (shared/notes/ros2-in-ci.md). Tests, the benchmark and `python -m
ros_nodes.run` therefore start ROS processes only through `sandboxed()`: a new network
namespace that has nothing but `lo`, Fast DDS pinned to a unicast loopback profile, and a
random domain id. This module imports no rclpy, so it is safe to use anywhere.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from importlib import resources
from pathlib import Path

SANDBOX_ENV = "OMNI_AGENT_ROS_SANDBOX"
"""Set to 1 inside a sandbox; `assert_sandboxed()` then verifies the namespace for real."""

_ENTER = 'ip link set lo up; exec "$@"'


def loopback_profile() -> Path:
    """The packaged Fast DDS profile: UDP on lo only, unicast discovery, 4 MB buffers."""
    return Path(str(resources.files("ros_nodes").joinpath("fastdds_loopback.xml")))


def unavailable_reason() -> str | None:
    """Why a private network namespace cannot be entered here, or None if it can."""
    for tool in ("unshare", "ip", "bash"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed, so no private network namespace can be made"
    try:
        done = subprocess.run(
            sandboxed(["true"]), capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run `unshare -n` ({exc})"
    if done.returncode != 0:
        err = (done.stderr.strip().splitlines() or ["no error text"])[-1]
        return f"`unshare -n` is not permitted here ({err}); needs root or user namespaces"
    return None


def sandboxed(cmd: list[str]) -> list[str]:
    """`cmd` wrapped to run in a new network namespace whose only interface is lo (up)."""
    return ["unshare", "-n", "bash", "-c", _ENTER, "_", *cmd]


def sandbox_env(domain_id: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for ROS processes in the sandbox: loopback profile, random domain id."""
    env = dict(os.environ if base is None else base)
    profile = str(loopback_profile())
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile  # Fast DDS 3 (Jazzy, Kilted)
    env["FASTRTPS_DEFAULT_PROFILES_FILE"] = profile  # Fast DDS 2 (Humble)
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env["ROS_DOMAIN_ID"] = str(random.randint(1, 100) if domain_id is None else domain_id)
    env[SANDBOX_ENV] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def interfaces() -> set[str]:
    """Network interfaces of this process's namespace (sysfs may show the host's)."""
    try:
        return {name for _, name in socket.if_nameindex()}
    except OSError:
        return set()


def assert_sandboxed() -> None:
    """Refuse to create DDS participants when a sandbox was asked for but is not real.

    Only enforced when SANDBOX_ENV is set (on a robot nodes run on the real network).
    """
    if os.environ.get(SANDBOX_ENV) != "1":
        return
    seen = interfaces()
    if seen != {"lo"}:
        raise SystemExit(
            f"refusing to start DDS: sandbox requested but interfaces are {sorted(seen)}"
        )
    for var in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        if not os.environ.get(var):
            raise SystemExit(f"refusing to start DDS: {var} is not set in the sandbox")

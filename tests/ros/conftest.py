"""ROS tests run real rclpy nodes, but only inside a private loopback-only namespace."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed (pip install '.[ros]')")

from ros_nodes.sandbox import sandbox_env, sandboxed, unavailable_reason

HERE = Path(__file__).resolve().parent
_REASON = unavailable_reason()


@pytest.fixture(scope="session")
def sandbox() -> None:
    if _REASON is not None:
        pytest.skip(f"no private network namespace for DDS: {_REASON}")


@pytest.fixture
def ros_worker(sandbox: None) -> Callable[..., tuple[dict[str, Any], str]]:
    return run_sandboxed


def run_sandboxed(script: str, *args: str, timeout: float = 300) -> tuple[dict[str, Any], str]:
    """Run tests/ros/<script> in the sandbox; returns (its JSON result, its stderr)."""
    done = subprocess.run(
        sandboxed([sys.executable, str(HERE / script), *args]),
        env=sandbox_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise AssertionError(
            f"{script} {' '.join(args)} failed (rc {done.returncode}):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    return json.loads(lines[-1]), done.stderr

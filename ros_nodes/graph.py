"""The node graphs, as data: which node runs from which module.

launch/robot.launch.py and launch/sim.launch.py declare the same graphs for `ros2 launch`
on a robot; `python -m ros_nodes.run` starts them as plain processes where the launch
runtime is not installed (tests check the two agree).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LAUNCH_DIR = Path(__file__).resolve().parent.parent / "launch"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    module: str

    def command(self, params_file: Path | None = None, python: str = sys.executable) -> list[str]:
        cmd = [python, "-m", self.module, "--ros-args", "-r", f"__node:={self.name}"]
        if params_file is not None:
            cmd += ["--params-file", str(params_file)]
        return cmd


CAMERA = NodeSpec("camera_node", "ros_nodes.camera_node")
MICROPHONE = NodeSpec("microphone_node", "ros_nodes.microphone_node")
AGENT = NodeSpec("agent_node", "ros_nodes.agent_node")
SPEAKER = NodeSpec("speaker_node", "ros_nodes.speaker_node")
ACTION = NodeSpec("action_node", "ros_nodes.action_node")
SIM = NodeSpec("sim_bridge", "ros_nodes.sim_bridge")
CONSOLE = NodeSpec("console_node", "ros_nodes.console_node")

GRAPHS: dict[str, tuple[NodeSpec, ...]] = {
    "robot": (CAMERA, MICROPHONE, AGENT, SPEAKER, ACTION),
    "sim": (SIM, AGENT, ACTION),
}
NODES = {spec.name: spec for spec in (CAMERA, MICROPHONE, AGENT, SPEAKER, ACTION, SIM, CONSOLE)}


def params_file(graph: str) -> Path | None:
    path = LAUNCH_DIR / f"{graph}_params.yaml"
    return path if path.exists() else None


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout_s: float = 5.0) -> None:
    """SIGINT every node (rclpy shuts down cleanly on it), then kill what lingers."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

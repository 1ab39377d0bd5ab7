"""The sandbox, `python -m ros_nodes.run` and `omni-agent bench ros`, run for real."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from ros_nodes.graph import params_file
from ros_nodes.sandbox import SANDBOX_ENV, sandbox_env, sandboxed

pytestmark = pytest.mark.ros
HERE = Path(__file__).resolve().parent


def test_sandbox_has_only_loopback_and_the_loopback_profile(sandbox: None) -> None:
    """Every DDS process runs under `unshare -n` with only lo up, never the real network."""
    assert sandboxed(["x"])[:2] == ["unshare", "-n"]
    code = "import os, socket; print(sorted(n for _, n in socket.if_nameindex()))"
    env = sandbox_env()
    out = subprocess.run(
        sandboxed([sys.executable, "-c", code]), env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == "['lo']"
    assert Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]).read_text().count('name="lo"') == 1
    assert 1 <= int(env["ROS_DOMAIN_ID"]) <= 100


def test_nodes_refuse_to_start_dds_when_the_sandbox_is_not_real() -> None:
    """SANDBOX_ENV set but the host network visible: refuse before any participant."""
    env = {**os.environ, SANDBOX_ENV: "1"}
    code = "from ros_nodes.sandbox import assert_sandboxed; assert_sandboxed()"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode == 0:
        pytest.skip("this machine has only a loopback interface")
    assert "refusing to start DDS" in out.stderr


UP = ("sim world 'home'", "e-stop ENGAGED until", "scripted agent ready")
"""What each node of the sim graph logs once it is up (sim_bridge, action_node, agent)."""


def test_run_starts_the_sim_graph_and_stops_it_cleanly(sandbox: None, tmp_path: Path) -> None:
    """Regression: a fixed 3 s run stopped a graph that was still starting on a busy
    machine (a node interrupted mid-import). Ctrl-C comes once every node is up."""
    src = params_file("sim")
    assert src is not None
    tree = yaml.safe_load(src.read_text())
    tree["agent_node"]["ros__parameters"]["agent"] = f"{HERE / 'scripted_host.py'}:run"
    params = tmp_path / "sim_params.yaml"
    params.write_text(yaml.safe_dump(tree))
    cmd = [sys.executable, "-m", "ros_nodes.run", "sim", "--no-console", "--params", str(params)]
    # already in the sandbox: this process is ros_nodes.run itself, so Ctrl-C reaches it
    proc = subprocess.Popen(
        sandboxed(cmd),
        env=sandbox_env(),
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: a failed run leaves no node behind
    )
    lines: list[str] = []
    up = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if all(any(mark in seen for seen in lines) for mark in UP):
                up.set()
        up.set()  # ended: the assertions below say why

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        up.wait(timeout=120)  # a deadline sized for a loaded machine; the event ends it
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the graph did not stop on Ctrl-C:\n" + "".join(lines)[-3000:])
        reader.join(timeout=30)  # stderr closes once no node is left holding it
        assert not reader.is_alive(), "a node outlived the graph:\n" + "".join(lines)[-3000:]
        assert proc.stdout is not None
        out = proc.stdout.read()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and any node it left
    log = "".join(lines)
    assert all(mark in log for mark in UP), log[-3000:]
    assert proc.returncode == 0, out + log[-3000:]


def test_bench_ros_runs_and_reports_delivery(sandbox: None, tmp_path: Path) -> None:
    """The bench's figures are the bench's (docs/ros2.md): here only that frames and audio
    cross and are reported; a busy machine drops best-effort frames."""
    report = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "bench.ros", "run", "--seconds", "2", "--modes", "ours"]
    out = subprocess.run(
        [*cmd, "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    ours = json.loads(report.read_text())["modes"]["ours"]
    assert 0 < ours["camera"]["delivered"] <= 1
    assert 0 < ours["audio"]["delivered"] <= 1

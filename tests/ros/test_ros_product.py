"""agent_node as the product: long-term memory across a restart, forgetting a person from
ROS, and the omni path (a backend that hears and speaks) on ROS topics."""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ros_nodes.graph import AGENT
from ros_nodes.sandbox import sandbox_env, sandboxed

pytestmark = pytest.mark.ros
Worker = Callable[..., tuple[dict[str, Any], str]]


def test_what_a_person_said_survives_a_restart_and_can_be_forgotten(
    ros_worker: Worker, tmp_path: Path
) -> None:
    result, _ = ros_worker("product_worker.py", "remember", str(tmp_path), timeout=400)
    assert "error" not in result, result.get("error")
    assert "Alice" in result["greeting_1"]  # named by /person/identified
    assert result["exit_1"] == 0
    # the memory file holds the first session's turns, with the person who said them
    assert ["Alice", "user", "My keys are on the kitchen table."] in result["rows_after_restart"]
    # a new process: the evidence came from the file, not from the conversation window
    assert "[You remember:" in result["request_text"]
    assert "kitchen table" in result["request_text"].split("[You remember:", 1)[1]
    assert "kitchen table" in result["asked"]
    assert result["forget_result"][0].startswith("forgot Alice: ")
    assert not [r for r in result["rows_after_forget"] if r[0] == "Alice"]
    assert "kitchen table" not in result["asked_after_forget"]
    assert result["exit_2"] == 0


def test_the_omni_path_on_ros_hears_audio_recalls_and_speaks(
    ros_worker: Worker, tmp_path: Path
) -> None:
    from sim.voice import speech_unavailable

    if (why := speech_unavailable()) is not None:
        pytest.skip(why)
    if importlib.util.find_spec("resemblyzer") is None:
        pytest.skip("speaker identification needs the speaker extra (resemblyzer)")
    result, stderr = ros_worker("product_worker.py", "omni", str(tmp_path), timeout=600)
    assert "error" not in result, result.get("error")
    assert result["audio_requests"] >= 1
    assert "input_audio" in result["request_parts"]  # the backend hears the person itself
    assert "kitchen table" in result["request_text"].split("[You remember:", 1)[1]
    assert "kitchen table" in result["answer"]
    # the double's own voice: the robot loaded no synthesizer of its own
    assert "speech: the backend hears; robot voice: none (the backend speaks)" in stderr
    assert sum(n for _, n in result["audio"]) > 16_000  # over a second of speech
    assert result["exit"] == 0


@pytest.mark.parametrize(
    ("param", "line"),
    [
        ("memory_url:=mysql://db/memory", "agent_node: memory_url 'mysql://db/memory' is not a"),
        (
            "memory_db:={tmp}/notes.txt",
            "agent_node: memory database {tmp}/notes.txt is not a usable",
        ),
    ],
)
def test_an_unusable_memory_stops_agent_node_with_one_line(
    sandbox: None, tmp_path: Path, param: str, line: str
) -> None:
    (tmp_path / "notes.txt").write_text("a shopping list, not a memory database\n" * 200)
    done = subprocess.run(
        sandboxed([*AGENT.command(), "-p", param.format(tmp=tmp_path)]),
        env=sandbox_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert line.format(tmp=tmp_path) in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert (tmp_path / "notes.txt").read_text().startswith("a shopping list")  # left alone

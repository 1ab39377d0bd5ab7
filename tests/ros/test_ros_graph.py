"""The ROS graph end to end: agent_node (real Agent, scripted model) + action_node."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ros
Worker = Callable[..., tuple[dict[str, Any], str]]


def _healthy(result: dict[str, Any], log: str = "") -> None:
    tail = log[-3000:]
    assert "error" not in result, f"{result.get('error')}\n{tail}"
    assert result["alive"] == [True, True], f"a node died during the scenario\n{tail}"
    assert result["exit_codes"] == [0, 0], f"a node did not stop cleanly on SIGINT\n{tail}"


def test_camera_and_audio_in_agent_answers_with_speech_and_cmd_vel(ros_worker: Worker) -> None:
    result, log = ros_worker("graph_worker.py", "answer")
    _healthy(result, log)
    assert result["speech"] == ["Driving forward, I saw camera 64x48."]
    assert result["linear"] == pytest.approx(0.2)
    assert result["last_linear"] == 0.0  # the move ends with a stop
    assert result["states"] == ["THINKING", "SPEAKING", "ACTING", "IDLE"]


def test_estop_zeroes_velocity_enters_safe_stop_and_blocks_commands(ros_worker: Worker) -> None:
    result, log = ros_worker("graph_worker.py", "estop")
    _healthy(result, log)
    assert result["zero_after_s"] > 0  # a zero Twist followed the engage (an event, not a race)
    assert set(result["linear_while_engaged"]) == {0.0}
    assert set(result["after_blocked_command"]) <= {0.0}
    assert "SAFE_STOP" in result["states"]
    assert result["states"][-1] == "IDLE"  # recovers once released


def test_watchdog_zeroes_velocity_when_commands_stop(ros_worker: Worker) -> None:
    result, log = ros_worker("graph_worker.py", "watchdog")
    _healthy(result, log)
    assert result["cmd"][0] == [0.3, 0.1]
    assert result["cmd"][-1] == [0.0, 0.0]
    assert result["zero_after_s"] >= 0.45  # not before the 0.5 s timeout (checked at 20 Hz)


def test_bad_messages_are_logged_dropped_and_survived(ros_worker: Worker) -> None:
    result, stderr = ros_worker("graph_worker.py", "bad_input")
    _healthy(result, stderr)
    assert result["bad_outputs"] == {"cmd": [], "goals": 0}  # NaN/inf never reach the base
    assert result["speech"] == ["Driving forward, I saw camera 64x48."]  # still answers
    for reason in (
        "image encoding 'yuv422' is not supported",
        "image data has 9206 bytes",
        "step*height is 9600",
        "longer than 1 s; dropped",
        "audio at 44100 Hz",
        "Twist has NaN or infinite values",
        "PoseStamped has NaN or infinite values",
        "empty user utterance",
    ):
        assert reason in stderr, f"no log line for: {reason}"


def test_nothing_moves_on_a_check_made_before_localization(
    ros_worker: Worker, tmp_path: Path
) -> None:
    """Regression: the move was checked against the pose before localization, then
    executed from the localizer's first pose, 0.3 m from a keep-out zone: it drove."""
    result, log = ros_worker("graph_worker.py", "unlocalized", str(tmp_path))
    _healthy(result, log)
    assert result["moved"] == []  # not one non-zero Twist reached the base
    for speech in (result["first_speech"], result["second_speech"]):
        assert any("can't do that safely" in line for line in speech), speech


def test_sim_graph_drives_the_simulated_robot(ros_worker: Worker) -> None:
    """Regression: on a busy machine the sim node was killed (-9) by a fixed 5 s stop
    deadline, and an utterance sent before the agent listened was lost."""
    result, log = ros_worker("graph_worker.py", "sim")
    _healthy(result, log)
    assert result["sim_exit"] == 0
    assert result["speech"][0].startswith("Driving forward")
    assert result["end"][0] - result["start"][0] > 0.05


def test_camera_and_microphone_nodes_publish_standard_messages(ros_worker: Worker) -> None:
    result, _ = ros_worker("devices_worker.py")
    assert result["alive"] == [True, True] and result["exit_codes"] == [0, 0]
    assert result["size"] == [160, 120, "rgb8"]  # resized from the 320x240 file
    assert result["jpeg"] == 160
    assert result["chunk_samples"] == [320]  # 20 ms at 16 kHz
    assert result["chunk_label"] == "pcm_s16_mono_16000"
    if importlib.util.find_spec("pyaudio") is None:  # a sound card needs PyAudio
        assert result["no_card_rc"] == 1
        assert result["no_card_msg"] == [
            "microphone_node needs PyAudio: pip install 'omni-agent[audio]' "
            "(Debian first: apt install portaudio19-dev)"
        ]


def test_agent_node_live_view_shows_a_turn_to_a_foxglove_client(ros_worker: Worker) -> None:
    pytest.importorskip("foxglove")
    pytest.importorskip("websockets")
    result, log = ros_worker("graph_worker.py", "live")
    _healthy(result, log)
    assert result["errors"] == []
    assert result["live_turns"] == result["speech"] == ["Driving forward, I saw camera 64x48."]
    assert "THINKING" in result["live_states"]
    assert result["live_frames"] >= 1 and result["live_transcript"] >= 2
    assert result["live_maps"] >= 1

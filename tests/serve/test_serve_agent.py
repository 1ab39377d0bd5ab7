"""The agent's simulation end to end against `omni-agent serve` (a separate process) and the
vLLM launch profiles' agreement with the agent's client profiles."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from omni_agent.brain import free_port
from omni_agent.model.profiles import get_profile
from serve.vllm import LAUNCH_PROFILES, launch_command
from tests.serve.interactive_omni_double import build_double

REPLY = {"say": "Hello Alice and Bob, I am Robbie.", "actions": []}


def omni_agent(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "omni_agent.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, **kwargs)  # type: ignore[call-overload, no-any-return]


def test_the_sim_talks_to_the_robot_through_omni_agent_serve(tmp_path: Path) -> None:
    model = build_double(tmp_path / "interactive-omni-double", json_reply=json.dumps(REPLY))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "omni_agent.cli", "serve", "--engine", "interactive-omni",
         "--model", str(model), "--device", "cpu", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "omni-agent serve did not become ready"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                    break
            time.sleep(0.2)
        result = omni_agent(
            "--model-url", url, "--profile", "omni-agent-serve", "sim", "--quiet", "--strict",
            "--scenario", "sim/scenarios/greeting.yaml", "--out", str(tmp_path / "runs"),
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(10)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5/5" in result.stdout  # every expectation of the greeting scenario met
    speech = list((tmp_path / "runs").rglob("*.wav"))
    assert speech, "the served speech was not played into the episode"


@pytest.mark.parametrize("name", sorted(LAUNCH_PROFILES))
def test_vllm_launch_profiles_match_what_the_client_sends(name: str) -> None:
    launch = LAUNCH_PROFILES[name]
    client = get_profile(launch.client_profile)
    command = launch_command(launch, None, "127.0.0.1", 8000)
    assert command[:3] == ["vllm", "serve", launch.model]
    limits = json.loads(command[command.index("--limit-mm-per-prompt") + 1])
    assert limits["image"] >= client.max_images and (limits["audio"] >= 1) == client.audio_in
    assert ("--tool-call-parser" in command) == (client.actions == "tool_calls")
    assert ("--omni" in command) == client.audio_out
    assert client.schema_field == "json_schema"  # vLLM's structured outputs, never guided_json
    assert "--enable-prefix-caching" in command


def test_vllm_command_prints_the_launch_line_and_the_agent_flags() -> None:
    result = omni_agent("vllm", "qwen2.5-omni-speech", "--model", "/models/Qwen2.5-Omni-7B")
    assert result.returncode == 0, result.stderr
    launch, agent = result.stdout.splitlines()
    assert launch.startswith("vllm serve /models/Qwen2.5-Omni-7B ") and "--omni" in launch
    assert "--profile vllm-omni" in agent


def test_serve_without_a_model_is_one_line(tmp_path: Path) -> None:
    result = omni_agent("serve", "--model", str(tmp_path / "none"), env={**os.environ})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no model at" in result.stderr

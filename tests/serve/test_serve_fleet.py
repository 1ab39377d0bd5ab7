"""`omni-agent vllm --replicas N`: the layout a fleet of robots points at."""

from __future__ import annotations

import subprocess
import sys


def _vllm(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "omni_agent.cli", "vllm", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)


def test_replicas_become_vllm_data_parallel_behind_one_endpoint() -> None:
    result = _vllm("qwen2.5-omni-thinker", "--replicas", "4", "--host", "0.0.0.0")
    assert result.returncode == 0, result.stderr
    launch, fleet, agent = result.stdout.splitlines()
    assert launch.endswith("--data-parallel-size 4")
    assert "4 replicas" in fleet and "same --model-url" in fleet
    assert "--model-url http://0.0.0.0:8000/v1 --profile vllm-omni-thinker" in agent
    single = _vllm("qwen2.5-omni-thinker").stdout
    assert "--data-parallel-size" not in single


def test_zero_replicas_is_one_line_exit_2() -> None:
    result = _vllm("qwen2.5-omni-thinker", "--replicas", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == "omni-agent: error: --replicas must be at least 1 (got 0)"

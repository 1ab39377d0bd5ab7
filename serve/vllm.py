"""vLLM launch profiles for the Qwen-Omni family, each paired with the agent's client profile.

A launch profile is the `vllm serve` command line a robot's GPU box runs; its client
profile (omni_agent/model/profiles.py) is how the agent talks to that server. They must
agree: tool calls need vLLM's tool-call parser, speech out needs vllm-omni's `--omni`, and
the multimodal limits must admit what the agent sends per turn.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict

from omni_agent.model.profiles import get_profile


class LaunchProfile(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    model: str
    client_profile: str
    omni: bool = False
    """vllm-omni's staged pipeline (thinker -> talker -> code2wav): speech out."""
    max_model_len: int = 32768
    limit_mm: dict[str, int] = {"image": 4, "audio": 2, "video": 1}
    install: str = "pip install vllm"

    def args(self) -> list[str]:
        args = [
            "--max-model-len", str(self.max_model_len),
            "--limit-mm-per-prompt", json.dumps(self.limit_mm, separators=(",", ":")),
            "--enable-prefix-caching",  # the agent keeps its prompt prefix byte-identical
        ]  # fmt: skip
        if get_profile(self.client_profile).actions == "tool_calls":
            # Qwen-Omni writes Hermes-style <tool_call> blocks.
            args += ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
        if self.omni:
            args.append("--omni")
        return args


LAUNCH_PROFILES = {
    p.name: p
    for p in (
        LaunchProfile(
            name="qwen2.5-omni-thinker",
            model="Qwen/Qwen2.5-Omni-7B",
            client_profile="vllm-omni-thinker",
        ),
        LaunchProfile(
            name="qwen3-omni-thinker",
            model="Qwen/Qwen3-Omni-30B-A3B-Instruct",
            client_profile="vllm-omni-thinker",
        ),
        # Speech out: JSON-schema replies (vLLM structured outputs) whose `say` is spoken.
        LaunchProfile(
            name="qwen2.5-omni-speech",
            model="Qwen/Qwen2.5-Omni-7B",
            client_profile="vllm-omni",
            omni=True,
            install="pip install vllm-omni",
        ),
        LaunchProfile(
            name="qwen3-omni-speech",
            model="Qwen/Qwen3-Omni-30B-A3B-Instruct",
            client_profile="vllm-omni",
            omni=True,
            install="pip install vllm-omni",
        ),
    )
}


def launch_command(profile: LaunchProfile, model: str | None, host: str, port: int) -> list[str]:
    return [
        "vllm",
        "serve",
        model or profile.model,
        "--host",
        host,
        "--port",
        str(port),
        *profile.args(),
    ]

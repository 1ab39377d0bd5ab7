from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="serving tests need the gpu extra (make test installs it)")

from omni_agent.brain import free_port
from serve.app import ServeSettings, create_app
from serve.engines import Engine
from tests.serve.interactive_omni_double import build_double


@contextmanager
def serving(engine: Engine, **settings: Any) -> Iterator[str]:
    """`engine` behind the real app and uvicorn on 127.0.0.1; yields the /v1 base URL."""
    import uvicorn

    port = free_port()
    app = create_app(engine, ServeSettings(**settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from serve.tiny_model import build

    return build(tmp_path_factory.mktemp("models") / "tiny-qwen2.5-omni")


@pytest.fixture(scope="session")
def qwen_engine(tiny_qwen: Path) -> Engine:
    from serve.engines import load_engine

    return load_engine("qwen2.5-omni", tiny_qwen, device="cpu", max_speech_s=0.4)


@pytest.fixture(scope="module")
def qwen_url(qwen_engine: Engine) -> Iterator[str]:
    with serving(qwen_engine, max_tokens=24) as url:
        yield url


@pytest.fixture
def double_dir(tmp_path: Path) -> Path:
    return build_double(tmp_path / "interactive-omni-double")

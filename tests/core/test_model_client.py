"""The streaming model client against the scripted test double of an OpenAI server:
streaming, actions as JSON or tool calls, retries, mid-stream failures, cancellation."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omni_agent.config import ModelConfig
from omni_agent.model.client import (
    Finish,
    ModelClient,
    ModelStreamError,
    ModelUnavailable,
    TextDelta,
    clean_text,
)
from omni_agent.model.profiles import get_profile
from omni_agent.model.reply import InvalidModelOutput, ReplyAssembler, SayExtractor
from omni_agent.model.request import UserInput, build_request
from sim.brains.scripted import ScriptedBackend, ScriptedReply

FAST = ModelConfig(retries=2, backoff_s=0.01)
GO = ScriptedReply(say='Going to the "kitchen" now.', actions=[{"skill": "stop"}])


def client_for(backend: ScriptedBackend, config: ModelConfig = FAST) -> ModelClient:
    return ModelClient("http://scripted/v1", config, transport=backend)


def request(profile: str) -> dict[str, object]:
    return build_request(
        get_profile(profile), FAST, "system", [], UserInput(text="go"), ["say", "stop"]
    )


async def collect(client: ModelClient, profile: str) -> tuple[list[str], ReplyAssembler]:
    assembler = ReplyAssembler(get_profile(profile).actions)
    spoken = []
    async for event in client.stream(request(profile)):
        if text := assembler.feed(event):
            spoken.append(text)
    assembler.finish()
    return spoken, assembler


@pytest.mark.parametrize("profile", ["llama-cpp", "vllm-omni-thinker"])
async def test_a_reply_streams_in_pieces_and_yields_the_same_say_and_actions(profile: str) -> None:
    spoken, assembler = await collect(client_for(ScriptedBackend(lambda b: GO)), profile)
    assert len(spoken) > 2  # speech can start before the reply is complete
    assert "".join(spoken) == GO.say
    assert assembler.reply.actions == [{"skill": "stop"}]


async def test_llama_cpp_requests_use_a_json_object_schema_and_flat_text_content() -> None:
    body = request("llama-cpp")
    assert body["response_format"]["type"] == "json_object"  # type: ignore[index]
    assert isinstance(body["messages"][-1]["content"], str)  # type: ignore[index]
    vllm = request("vllm-omni-thinker")
    assert vllm["tools"] and "response_format" not in vllm


async def test_a_down_server_is_retried_then_reported_in_one_line() -> None:
    backend = ScriptedBackend(lambda b: GO)
    backend.down = True
    with pytest.raises(ModelUnavailable) as info:
        await collect(client_for(backend), "llama-cpp")
    assert "unavailable: connection refused" in str(info.value)
    assert "\n" not in str(info.value)


async def test_a_server_that_comes_back_during_the_retries_is_used() -> None:
    backend = ScriptedBackend(lambda b: GO)
    backend.down = True

    async def bring_back() -> None:
        await asyncio.sleep(0.015)
        backend.down = False

    task = asyncio.create_task(bring_back())
    spoken, _ = await collect(client_for(backend), "llama-cpp")
    await task
    assert "".join(spoken) == GO.say


async def test_a_stream_that_breaks_off_is_an_error_and_never_replayed() -> None:
    backend = ScriptedBackend(lambda b: GO)
    backend.die_after_chunks = 3
    with pytest.raises(ModelStreamError, match="broke off"):
        await collect(client_for(backend), "llama-cpp")
    assert len(backend.requests) == 1


async def test_a_stalled_stream_times_out() -> None:
    backend = ScriptedBackend(lambda b: GO, chunk_delay_s=0.5)
    config = ModelConfig(first_token_timeout_s=0.05, total_timeout_s=0.2, retries=0)
    with pytest.raises((ModelStreamError, ModelUnavailable)):
        await collect(client_for(backend, config), "llama-cpp")


async def test_cancelling_the_consumer_closes_the_stream_on_the_server() -> None:
    backend = ScriptedBackend(lambda b: GO, chunk_delay_s=0.05)
    client = client_for(backend)
    first = asyncio.Event()

    async def consume() -> None:
        async for event in client.stream(request("llama-cpp")):
            if isinstance(event, TextDelta):
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert backend.cancelled == 1


def test_invalid_json_replies_are_reported_without_losing_what_was_said() -> None:
    assembler = ReplyAssembler("json_schema")
    assembler.feed(TextDelta('{"say": "Hello the'))
    assembler.feed(Finish("length"))
    with pytest.raises(InvalidModelOutput, match="not valid JSON"):
        assembler.finish()
    assert assembler.reply.say == "Hello the"


@given(
    say=st.text(max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_say_is_decoded_identically_however_the_stream_is_split(say: str, cuts: list[int]) -> None:
    raw = json.dumps({"say": say, "actions": [{"skill": "stop"}]})
    points = sorted({min(c, len(raw)) for c in cuts} | {0, len(raw)})
    extractor = SayExtractor()
    out = "".join(extractor.feed(raw[a:b]) for a, b in itertools.pairwise(points))
    assert out == clean_text(say)  # control characters are never spoken

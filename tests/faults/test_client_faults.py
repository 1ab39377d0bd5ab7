"""The model client and reply assembler alone against hostile input: whatever arrives is
events, a ModelError (one line), or an InvalidModelOutput / refused actions, never another
exception; nothing unclean gets through, and no reply executes unless it was complete."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.hostile import CATALOGUE, Case, HostileServer, Outcome, Reply, frames
from omni_agent.config import ModelConfig
from omni_agent.model.client import (
    Finish,
    ModelClient,
    ModelError,
    ModelStreamError,
    TextDelta,
    ToolCallDelta,
    clean_text,
    parse_chunk,
)
from omni_agent.model.prefill import reply_opening
from omni_agent.model.profiles import get_profile
from omni_agent.model.reply import InvalidModelOutput, ReplyAssembler, SayExtractor, max_actions
from omni_agent.model.request import UserInput, build_request
from tests.faults.conftest import FAULT_MODEL, HANG_S

SKILLS = ["say", "move", "navigate_to", "turn", "look_at", "stop"]


async def outcome_of(server: HostileServer, profile: str, config: ModelConfig) -> Outcome:
    body = build_request(get_profile(profile), config, "system", [], UserInput(text="stop"), SKILLS)
    assembler = ReplyAssembler(get_profile(profile).actions, reply_opening(body))
    client = ModelClient(server.url, config)
    try:
        async for event in client.stream(body):
            assembler.feed(event)
        reply = assembler.finish()
    except ModelError as exc:
        assert "\n" not in str(exc) and str(exc) == clean_text(str(exc))
        return "safe_stop"
    except InvalidModelOutput:
        assert assembler.reply.actions == []
        return "rejected"
    finally:
        await client.aclose()
    assert reply.say == clean_text(reply.say) and reply.raw == clean_text(reply.raw)
    if reply.rejected:
        assert reply.actions == []
        return "rejected"
    return "answered"


@pytest.mark.parametrize("profile", ["llama-cpp-chatml", "vllm-omni", "vllm-omni-thinker"])
@pytest.mark.parametrize(
    "case", [c for c in CATALOGUE.values() if not c.slow], ids=lambda c: c.name
)
async def test_every_fault_is_events_a_model_error_or_a_refused_reply(
    case: Case, profile: str, hostile: HostileServer
) -> None:
    hostile.case = case.name
    outcome = await asyncio.wait_for(outcome_of(hostile, profile, FAULT_MODEL), HANG_S)
    assert outcome == case.outcome


async def test_a_server_dripping_bytes_is_cut_off_at_the_reply_deadline(
    hostile: HostileServer,
) -> None:
    hostile.case = "slow_drip"  # a byte every 50 ms: no read ever times out by itself
    config = FAULT_MODEL.model_copy(update={"first_token_timeout_s": 30.0, "retries": 5})
    client = ModelClient(hostile.url, config)
    with pytest.raises(ModelStreamError, match="exceeded total_timeout_s=1"):
        async for _ in client.stream({"messages": []}):
            pass
    await client.aclose()
    assert len(hostile.requests) == 1


async def test_retries_of_a_silent_server_stop_at_the_reply_deadline(
    hostile: HostileServer,
) -> None:
    hostile.case = "stall_headers"
    config = FAULT_MODEL.model_copy(update={"retries": 10, "backoff_s": 0.0})
    assert await asyncio.wait_for(outcome_of(hostile, "vllm-omni", config), HANG_S) == "safe_stop"
    assert len(hostile.requests) < 10  # the deadline, not the retry count, ended it


async def test_an_http_error_is_one_clean_line_with_the_servers_own_words(
    hostile: HostileServer,
) -> None:
    hostile.case = "http_400"
    client = ModelClient(hostile.url, FAULT_MODEL)
    with pytest.raises(ModelError) as info:
        async for _ in client.stream({"messages": []}):
            pass
    await client.aclose()
    assert str(info.value) == "model server rejected the request: HTTP 400: bad"


@pytest.mark.parametrize(
    "chunk",
    [
        ["not", "an", "object"],
        "a string",
        {"choices": {"0": {}}},
        {"choices": ["x"]},
        {"choices": [{"delta": {"content": ["x"]}}]},
        {"choices": [{"delta": {"content": "x"}, "finish_reason": 7}]},
        {"choices": [{"delta": {"tool_calls": [{"index": -1}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": {"a": 1}}}]}}]},
        {"choices": [{"delta": {"audio": "data"}}]},
        {"choices": [{"delta": {"audio": {"data": "!!!"}}}]},
        {"choices": [{"delta": {"audio": {"data": "UklGRg=="}}}]},
        {"error": {"message": "out of memory\n\x1b[31mtrace"}},
    ],
)
def test_a_chunk_of_the_wrong_shape_is_a_one_line_stream_error(chunk: Any) -> None:
    with pytest.raises(ModelStreamError) as info:
        parse_chunk(chunk)
    message = str(info.value)
    assert "\n" not in message and message == clean_text(message)


def test_text_from_the_server_is_cleaned() -> None:
    events = parse_chunk({"choices": [{"delta": {"content": "a\udc00b\x1b[2Jc\x00d\te\nf\x9b"}}]})
    assert events == [TextDelta("a\ufffdb[2Jcd\te\nf")]
    "".join(e.text for e in events if isinstance(e, TextDelta)).encode()  # UTF-8 safe


def test_a_whole_messages_tool_calls_keep_their_order() -> None:
    calls = [{"function": {"name": n, "arguments": "{}"}} for n in ("turn", "stop")]
    message = {"choices": [{"message": {"tool_calls": calls}, "finish_reason": "tool_calls"}]}
    events = parse_chunk(message)
    assert events[:2] == [ToolCallDelta(0, "turn", "{}"), ToolCallDelta(1, "stop", "{}")]


def json_reply(actions: list[dict[str, Any]], finish: str | None = "stop") -> ReplyAssembler:
    assembler = ReplyAssembler("json_schema")
    assembler.feed(TextDelta(json.dumps({"say": "Okay.", "actions": actions})))
    if finish:
        assembler.feed(Finish(finish))
    return assembler


def test_a_reply_within_the_schemas_action_cap_keeps_its_actions() -> None:
    reply = json_reply([{"skill": "stop"}] * max_actions()).finish()
    assert len(reply.actions) == max_actions() and reply.rejected == []


def test_a_reply_over_the_action_cap_is_refused_whole_in_one_line() -> None:
    for count in (max_actions() + 1, 200):
        reply = json_reply([{"skill": "stop"}] * count).finish()
        assert reply.actions == []
        assert [str(r) for r in reply.rejected] == [
            f"reply: {count} actions in one reply, at most {max_actions()}; none taken"
        ]
        assert reply.say == "Okay."


def test_too_many_tool_calls_are_refused_whole() -> None:
    assembler = ReplyAssembler("tool_calls")
    for i in range(max_actions() + 1):
        assembler.feed(ToolCallDelta(i, "stop", "{}"))
    assembler.feed(Finish("tool_calls"))
    reply = assembler.finish()
    assert reply.actions == [] and len(reply.rejected) == 1


@pytest.mark.parametrize("mode", ["json_schema", "tool_calls"])
def test_a_reply_that_never_finished_executes_nothing(mode: Any) -> None:
    assembler = ReplyAssembler(mode)
    if mode == "json_schema":
        assembler.feed(TextDelta('{"say": "Going.", "actions": [{"skill": "stop"}]}'))
    else:
        assembler.feed(TextDelta("Going."))
        assembler.feed(ToolCallDelta(0, "stop", "{}"))
    with pytest.raises(InvalidModelOutput, match="without a finish reason"):
        assembler.finish()
    assert assembler.reply.actions == []
    assert assembler.reply.say == "Going."


def test_one_unreadable_tool_call_refuses_the_whole_plan() -> None:
    assembler = ReplyAssembler("tool_calls")
    assembler.feed(ToolCallDelta(0, "turn", '{"degrees": 90}'))
    assembler.feed(ToolCallDelta(1, "move", "{not json"))
    assembler.feed(Finish("tool_calls"))
    reply = assembler.finish()
    assert reply.actions == []
    assert [r.skill for r in reply.rejected] == ["move"]


def test_strings_inside_a_reply_are_cleaned() -> None:
    raw = '{"say": "Hi \\udc00\\u001b", "actions": [{"skill": "look_at", "target": "\\ud800x"}]}'
    assembler = ReplyAssembler("json_schema")
    spoken = assembler.feed(TextDelta(raw))
    assembler.feed(Finish("stop"))
    reply = assembler.finish()
    assert spoken == "Hi \ufffd"
    assert reply.actions == [{"skill": "look_at", "target": "\ufffdx"}]


ESCAPY = st.text(alphabet='\\u"dDcCaAfF0189zZ{} :sy', max_size=60)


@given(body=ESCAPY, cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=6))
def test_say_extraction_never_raises_and_speaks_only_clean_text(body: str, cuts: list[int]) -> None:
    raw = '{"say": "' + body
    points = sorted({min(c, len(raw)) for c in cuts} | {0, len(raw)})
    extractor = SayExtractor()
    out = "".join(extractor.feed(raw[a:b]) for a, b in itertools.pairwise(points))
    assert out == clean_text(out)


@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "choices",
                        "delta",
                        "message",
                        "content",
                        "text",
                        "tool_calls",
                        "function",
                        "audio",
                        "data",
                        "finish_reason",
                        "index",
                        "error",
                    ]
                ),
                inner,
                max_size=3,
            )
        ),
        max_leaves=12,
    )
)
def test_any_json_chunk_is_events_or_a_stream_error(payload: Any) -> None:
    with contextlib.suppress(ModelStreamError):
        parse_chunk(payload)


class SplitStream(httpx.AsyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
    newline=st.sampled_from([b"\n", b"\r\n"]),
)
async def test_events_are_the_same_however_the_network_splits_the_bytes(
    cuts: list[int], newline: bytes
) -> None:
    chunks = frames("json", Reply(say="Hello there, ünïcödé 😀 friend."), audio=True)
    sse = b"".join(b"data: " + json.dumps(c).encode() + newline * 2 for c in chunks)
    sse = b": keep-alive" + newline + sse + b"data: [DONE]" + newline * 2
    points = sorted({min(c, len(sse)) for c in cuts} | {0, len(sse)})
    pieces = [sse[a:b] for a, b in itertools.pairwise(points)]

    def respond(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=headers, stream=SplitStream(pieces))

    client = ModelClient("http://split/v1", FAULT_MODEL, transport=httpx.MockTransport(respond))
    events = [e async for e in client.stream({"messages": []})]
    await client.aclose()
    assert events == [e for c in chunks for e in parse_chunk(c)]

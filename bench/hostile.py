"""A hostile OpenAI-compatible model server on 127.0.0.1 (a test double).

The scripted double answers inside httpx and always keeps the protocol; this one listens
on a real socket and writes raw HTTP/1.1, so it can break the protocol the ways a real
server, proxy or network does: headers that never come, a chunked body cut mid-chunk,
bytes dripped without a newline, HTML instead of events, JSON of the wrong shape or
nested a hundred thousand deep, undecodable audio, lone surrogates, a reply without a
finish reason or without `[DONE]`, more actions than the reply schema allows.

`CATALOGUE` names each behaviour with the outcome the agent owes it; `server.case` picks
the behaviour of the next requests ("good" answers properly, and only then does the model
list answer 200), so one server can fail and then come back. Whatever a backend profile
asks for is answered in its shape: chat completions with tool calls or a JSON reply, a
prefilled /v1/completions continuation, with speech when the request asks for audio.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from omni_agent.media import wav_bytes
from omni_agent.model.client import MAX_LINE_BYTES
from omni_agent.model.prefill import REPLY_OPENING

Outcome = Literal["safe_stop", "rejected", "answered"]
"""What the agent owes a case: SAFE_STOP (the server failed), a rejected reply (the server
worked, the model's reply was unusable: nothing moves), or a normal answer."""
Shape = Literal["json", "prefill", "tools"]

GOOD_SAY = "All is well. I will stop right here."
GOOD_ACTIONS: tuple[dict[str, Any], ...] = ({"skill": "stop"},)
_PIECE = 16  # characters of reply text per streamed chunk


@dataclass(frozen=True)
class Reply:
    """What the model says and proposes, rendered in whatever shape the request asks for."""

    say: str = GOOD_SAY
    actions: tuple[dict[str, Any], ...] = GOOD_ACTIONS
    json_text: str | None = None
    """The whole JSON reply verbatim (JSON and prefill shapes), to break its format."""
    tool_arguments: str | None = None
    """One tool call's arguments verbatim (tool-call shape), to break them."""


def shape_of(body: dict[str, Any]) -> Shape:
    if "prompt" in body:
        return "prefill"
    return "json" if "response_format" in body else "tools"


def _chunk(shape: Shape, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    if shape == "prefill":
        choice = {"index": 0, "text": delta.get("content", ""), "finish_reason": finish}
        return {"object": "text_completion", "choices": [choice]}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"object": "chat.completion.chunk", "choices": [choice]}


def _text_and_calls(shape: Shape, reply: Reply) -> tuple[str, list[dict[str, Any]]]:
    if shape == "tools":
        if reply.tool_arguments is not None:
            calls = [("navigate_to", reply.tool_arguments)]
        else:
            calls = [
                (a["skill"], json.dumps({k: v for k, v in a.items() if k != "skill"}))
                for a in reply.actions
            ]
        return reply.say, [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(calls)
        ]
    text = reply.json_text
    if text is None:
        text = json.dumps({"say": reply.say, "actions": list(reply.actions)}, ensure_ascii=False)
    if shape == "prefill" and text.startswith(REPLY_OPENING):
        text = text[len(REPLY_OPENING) :]  # the client wrote the opening into its prompt
    return text, []


def speech_wav(seconds: float = 0.2) -> bytes:
    """A short 24 kHz tone as WAV bytes: the speech a backend that talks sends back."""
    rate = 24_000
    tone = (int(3000 * math.sin(2 * math.pi * 220 * i / rate)) for i in range(int(rate * seconds)))
    return wav_bytes(b"".join(s.to_bytes(2, "little", signed=True) for s in tone), rate)


def frames(shape: Shape, reply: Reply, audio: bool, audio_data: str | None = None) -> list[Any]:
    """The reply's SSE chunks, finish reason last (no `[DONE]`)."""
    text, calls = _text_and_calls(shape, reply)
    out: list[Any] = [] if shape == "prefill" else [_chunk(shape, {"role": "assistant"})]
    out += [_chunk(shape, {"content": text[i : i + _PIECE]}) for i in range(0, len(text), _PIECE)]
    out += [_chunk(shape, {"tool_calls": [{"index": i, **c}]}) for i, c in enumerate(calls)]
    if audio or audio_data is not None:
        data = audio_data if audio_data is not None else base64.b64encode(speech_wav()).decode()
        # in a chat delta even for a completion: the client reads whatever arrives
        out.append(_chunk("json", {"audio": {"data": data}}))
    out.append(_chunk(shape, {}, "tool_calls" if calls else "stop"))
    return out


def whole(shape: Shape, reply: Reply, audio: bool) -> dict[str, Any]:
    """The reply as one non-streamed response (a server that ignores `stream: true`)."""
    text, calls = _text_and_calls(shape, reply)
    if shape == "prefill":
        return {
            "object": "text_completion",
            "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
        }
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
    if audio:
        message["audio"] = {"data": base64.b64encode(speech_wav()).decode()}
    finish = "tool_calls" if calls else "stop"
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }


class Connection:
    """One client connection, written as raw HTTP/1.1 (every response closes it)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def respond(
        self, status: int, body: bytes, content_type: str = "application/json"
    ) -> None:
        head = (
            f"HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        await self.send(head.encode() + body)

    async def open_stream(self, content_type: str = "text/event-stream", extra: str = "") -> None:
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{extra}"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        await self.send(head.encode())

    async def chunk(self, data: bytes) -> None:
        if data:
            await self.send(b"%x\r\n%s\r\n" % (len(data), data))

    async def event(self, data: Any) -> None:
        payload = data if isinstance(data, bytes) else json.dumps(data).encode()
        await self.chunk(b"data: " + payload + b"\n\n")

    async def end(self) -> None:
        await self.send(b"0\r\n\r\n")

    async def hung_up(self, within: float | None = None) -> bool:
        """Whether the client hangs up within `within` seconds (None: wait until it does)."""
        while True:
            try:
                data = await asyncio.wait_for(self._reader.read(4096), within)
            except asyncio.TimeoutError:
                return False
            if not data:
                return True


Play = Callable[["HostileServer", Connection, Shape, bool], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    outcome: Outcome
    play: Play
    slow: bool = False
    """Ended only by the client's own deadline (total_timeout_s)."""


async def stream(
    conn: Connection, chunks: list[Any], *, done: bool = True, cut: bool = False
) -> None:
    """Stream chunks; `done` closes with [DONE]; `cut` drops the connection mid-body."""
    await conn.open_stream()
    for item in chunks:
        await conn.event(item)
    if done:
        await conn.event(b"[DONE]")
    if not cut:
        await conn.end()


def _reply(reply: Reply) -> Play:
    async def play(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
        await stream(conn, frames(shape, reply, audio))

    return play


def _raw(*events: bytes, head: bool = True) -> Play:
    """A stream that opens like a reply, then sends these SSE payloads verbatim."""

    async def play(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
        opening = frames(shape, Reply(), audio)[:2] if head else []
        await stream(conn, [*opening, *events])

    return play


def _status(code: int, message: str) -> Play:
    async def play(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
        body = {"error": {"message": message, "type": "server_error", "code": code}}
        await conn.respond(code, json.dumps(body).encode())

    return play


async def _good(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    await stream(conn, frames(shape, Reply(), audio))


async def _whole_json(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    await conn.respond(200, json.dumps(whole(shape, Reply(), audio)).encode())


async def _html(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
    await conn.respond(200, page, content_type="text/html")


async def _not_sse(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    await conn.open_stream()
    await conn.chunk(b"Hello! This is not an event stream at all.\nJust lines of text.\n")
    await conn.end()


async def _bad_gzip(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    await conn.open_stream(extra="Content-Encoding: gzip\r\n")
    await conn.chunk(b"\x1f\x8b\x08\x00this is not deflate data at all")
    await conn.end()


async def _stall_headers(
    server: HostileServer, conn: Connection, shape: Shape, audio: bool
) -> None:
    await conn.hung_up()  # accepted, read, and never answered


async def _stall_mid(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    await conn.open_stream()
    for item in frames(shape, Reply(), audio)[:3]:
        await conn.event(item)
    await conn.hung_up()


async def _drip(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    await conn.open_stream()
    start = b'data: {"choices": [{"index": 0, "delta": {"content": "'
    for n in itertools.count():  # one byte at a time, never a newline
        await conn.chunk(start[n : n + 1] or b"a")
        if await conn.hung_up(server.drip_s):
            return


async def _endless_line(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    await conn.open_stream()
    block = b"a" * 65_536
    await conn.chunk(b"data: ")
    for _ in range(MAX_LINE_BYTES // len(block) + 16):
        await conn.chunk(block)
    await conn.end()


async def _early_close(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    # everything but the finish: the say and the action have arrived, then the line drops
    await stream(conn, frames(shape, Reply(), audio)[:-1], done=False, cut=True)


async def _no_finish(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    await stream(conn, frames(shape, Reply(), audio)[:-1], done=True)


async def _no_done(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    await stream(conn, frames(shape, Reply(), audio), done=False)


async def _error_event(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    error = {"error": {"message": "CUDA out of memory.\nTried to allocate 2 GiB", "code": 500}}
    await stream(conn, [*frames(shape, Reply(), audio)[:3], error])


def _bad_audio(data: str) -> Play:
    async def play(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
        await stream(conn, frames(shape, Reply(), audio, audio_data=data))

    return play


async def _invalid_utf8(server: HostileServer, conn: Connection, shape: Shape, audio: bool) -> None:
    # raw bytes that are not UTF-8, inside the JSON string of the first text chunk
    chunks = frames(shape, Reply(), audio)
    first = 0 if shape == "prefill" else 1
    encoded = json.dumps(chunks[first]).encode().replace(b'"All', b'"\xff\xfeAll', 1)
    chunks[first] = encoded
    await stream(conn, chunks)


_DEEP = 100_000
_NEST = "[" * 5_000 + "]" * 5_000
_ESCAPE = '{"say": "Caf\\uZZZZ is ready.", "actions": []}'

CATALOGUE: dict[str, Case] = {
    c.name: c
    for c in (
        Case("good", "a well-behaved server", "answered", _good),
        Case("whole_json", "ignores stream=true, one JSON response", "answered", _whole_json),
        Case("http_500", "HTTP 500 with an error body", "safe_stop", _status(500, "boom")),
        Case("http_400", "HTTP 400 (rejects the request)", "safe_stop", _status(400, "bad")),
        Case("http_429", "HTTP 429 (rate limited)", "safe_stop", _status(429, "slow down")),
        Case("html_page", "200 with an HTML page, not SSE at all", "safe_stop", _html),
        Case("not_sse", "an event stream with no data lines", "safe_stop", _not_sse),
        Case("bad_gzip", "gzip-encoded body that is not gzip", "safe_stop", _bad_gzip),
        Case("malformed_json", "an SSE line of broken JSON", "safe_stop", _raw(b'{"choices": [')),
        Case("wrong_shape", "valid JSON that is not an object", "safe_stop", _raw(b'["a", 1]')),
        Case(
            "wrong_field_type",
            "content is a list, finish_reason a number",
            "safe_stop",
            _raw(b'{"choices": [{"delta": {"content": ["x"]}, "finish_reason": 7}]}'),
        ),
        Case(
            "deep_nesting",
            f"an SSE line nested {_DEEP:,} deep",
            "safe_stop",
            _raw(b"[" * _DEEP + b"]" * _DEEP),
        ),
        Case(
            "bad_escape",
            "an SSE line with a bad \\u escape",
            "safe_stop",
            _raw(b'{"choices": [{"index": 0, "delta": {"content": "\\uZZZZ"}}]}'),
        ),
        Case("bad_base64_audio", "speech that is not base64", "safe_stop", _bad_audio("!!no!!")),
        Case(
            "bad_wav",
            "speech that is base64 but not a WAV file",
            "safe_stop",
            _bad_audio(base64.b64encode(b"RIFF\x10\x00\x00\x00WAVEjunk").decode()),
        ),
        Case("error_event", "an error object mid-stream", "safe_stop", _error_event),
        Case("early_close", "connection dropped before the finish", "safe_stop", _early_close),
        Case("no_finish", "[DONE] without a finish reason", "safe_stop", _no_finish),
        Case("no_done", "a finish reason, then the end without [DONE]", "safe_stop", _no_done),
        Case("endless_line", "a line that never ends, sent fast", "safe_stop", _endless_line),
        Case("stall_headers", "accepts, never answers", "safe_stop", _stall_headers, slow=True),
        Case("stall_mid", "stops sending mid-reply", "safe_stop", _stall_mid, slow=True),
        Case("slow_drip", "one byte at a time, no newline", "safe_stop", _drip, slow=True),
        Case(
            "lone_surrogate",
            "a lone surrogate in the streamed text",
            "answered",
            _reply(Reply(say="Hello \udc00 there, I will stop.")),
        ),
        Case(
            "surrogate_in_reply",
            "a lone surrogate escape inside the model's JSON",
            "answered",
            _reply(
                Reply(
                    say="Hello \\udc00 there.",  # tool shape: plain text
                    json_text='{"say": "Hello \\udc00 there.", "actions": [{"skill": "stop"}]}',
                )
            ),
        ),
        Case(
            "control_chars",
            "escape sequences and NULs in the text",
            "answered",
            _reply(Reply(say="Hello\x1b[2J\x00\x07 there\x9b, I will stop.")),
        ),
        Case("invalid_utf8", "bytes that are not UTF-8", "answered", _invalid_utf8),
        Case(
            "not_json_reply",
            "the reply (or tool arguments) is not JSON",
            "rejected",
            _reply(Reply(json_text='{"say": "Sure thing!", "actions": [{"sk', tool_arguments="{x")),
        ),
        Case(
            "wrong_shape_reply",
            "the reply JSON has the wrong shape",
            "rejected",
            _reply(Reply(json_text='{"say": "Sure.", "actions": "go"}', tool_arguments="[1, 2]")),
        ),
        Case(
            "deep_reply",
            "the reply JSON is nested 5,000 deep",
            "rejected",
            _reply(
                Reply(
                    json_text='{"say": "Sure.", "actions": ' + _NEST + "}",
                    tool_arguments='{"place": ' + _NEST + "}",
                )
            ),
        ),
        Case(
            "bad_escape_reply",
            "a bad \\u escape inside the model's JSON",
            "rejected",
            _reply(Reply(json_text=_ESCAPE, tool_arguments='{"place": "Caf\\uZZZZ"}')),
        ),
        Case(
            "too_many_actions",
            "200 actions where the schema allows a few",
            "rejected",
            _reply(Reply(actions=GOOD_ACTIONS * 200)),
        ),
    )
}


@dataclass
class HostileServer:
    """The hostile server; `async with HostileServer() as server:` listens on 127.0.0.1."""

    case: str = "good"
    drip_s: float = 0.05
    """Seconds between dripped bytes (slow_drip)."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Request bodies received, in order."""
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)
    _open: dict[asyncio.Task[Any], asyncio.StreamWriter] = field(
        default_factory=dict, init=False, repr=False
    )

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the hostile server is not started")
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        # drop every connection still open: its handler sees the hang-up and returns, which
        # a cancelled handler would not do quietly (asyncio logs the cancellation)
        for writer in self._open.values():
            writer.transport.abort()
        if self._open:
            await asyncio.wait(list(self._open), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._open[task] = writer
        conn = Connection(reader, writer)
        try:
            method, path, body = await _read_request(reader)
            await self._route(conn, method, path, body)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client hung up (or sent nonsense): nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._open.pop(task, None)

    async def _route(self, conn: Connection, method: str, path: str, body: bytes) -> None:
        if path.endswith("/models"):
            up = self.case == "good"
            listing = {"object": "list", "data": [{"id": "hostile"}]} if up else {}
            await conn.respond(200 if up else 503, json.dumps(listing).encode())
            return
        if method != "POST" or not path.endswith("completions"):
            await conn.respond(404, b'{"error": {"message": "not found"}}')
            return
        request = json.loads(body)
        self.requests.append(request)
        audio = "audio" in (request.get("modalities") or [])
        await CATALOGUE[self.case].play(self, conn, shape_of(request), audio)


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    method, path, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return method, path, await reader.readexactly(length)

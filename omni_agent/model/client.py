"""Streaming OpenAI-compatible chat client with timeouts, retries and cancellation.

Retries (with exponential backoff) only happen before the first streamed byte: once a
reply is streaming, a failure is reported, never silently replayed, because part of the
answer may already have been spoken. Cancelling the consuming task closes the HTTP stream,
which is how a barge-in stops generation on the server.

The server is not trusted. Whatever it sends (an HTTP error, HTML, JSON of the wrong
shape, nesting deep enough to exhaust the parser, undecodable audio, a stream that stalls,
drips or ends early) comes out as one `ModelError` with a one-line reason, which the agent
answers with SAFE_STOP; `total_timeout_s` is a wall-clock deadline on the whole reply,
retries included, however slowly the bytes arrive. A reply is complete only when a finish
reason and the closing `[DONE]` have arrived, so a cut-off reply never looks finished.
Text is cleaned (`clean_text`) before anything downstream (tokenizer, memory, logs) sees it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from omni_agent.config import ModelConfig
from omni_agent.errors import UserError
from omni_agent.media import read_wav
from omni_agent.text import clean_text, one_line

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 16 * 1024 * 1024
"""The longest SSE line (or non-streamed body) read: a whole reply's speech as base64 WAV
fits many times over; a server sending an endless line is cut off here."""
_ERROR_BODY_BYTES = 2048
_MAX_TOOL_INDEX = 1024
_T = TypeVar("_T")


class ModelError(UserError):
    """The model backend failed; the message is one line a user can act on."""


class ModelUnavailable(ModelError):
    """Could not reach the backend (down, refusing, or erroring) after the retries."""


class ModelStreamError(ModelError):
    """The backend failed, stalled or sent something unreadable once the request was sent."""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    name: str | None
    arguments: str


@dataclass(frozen=True)
class AudioDelta:
    pcm: bytes
    sample_rate: int
    transcript: str = ""
    """The backend's transcript of this audio, when it sends one."""


@dataclass(frozen=True)
class Finish:
    reason: str | None
    usage: dict[str, Any] | None = None


StreamEvent = TextDelta | ToolCallDelta | AudioDelta | Finish


# The wire format, as much of it as the client reads. Unknown fields are ignored (servers
# add their own); a known field of the wrong type makes the whole chunk unreadable.
class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Function(_Wire):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(_Wire):
    index: int | None = Field(None, ge=0, le=_MAX_TOOL_INDEX)
    """Streamed calls carry it; a whole message's calls are in order without one."""
    function: _Function | None = None


class _Audio(_Wire):
    data: str | None = None
    transcript: str | None = None
    """What the backend's own speech says (vllm-omni, `omni-agent serve`)."""


class _Delta(_Wire):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None
    audio: _Audio | None = None


class _Choice(_Wire):
    delta: _Delta | None = None
    message: _Delta | None = None
    text: str | None = None
    """A plain completion's text (/v1/completions)."""
    finish_reason: str | None = None


class _Chunk(_Wire):
    choices: list[_Choice] | None = None
    usage: dict[str, Any] | None = None
    error: Any = None


def _audio_event(data: str) -> AudioDelta:
    try:
        wav = base64.b64decode(data, validate=True)
    except ValueError:
        raise ModelStreamError("model sent audio that is not valid base64") from None
    try:
        pcm, rate = read_wav(wav)
    except Exception as exc:  # the wave module raises several types on hostile headers
        raise ModelStreamError(f"model sent audio that is not a usable WAV file: {exc}") from None
    if not 0 < rate <= 384_000:
        raise ModelStreamError(f"model sent audio at an impossible sample rate ({rate} Hz)")
    return AudioDelta(pcm=pcm, sample_rate=rate)


def _error_text(error: Any) -> str:
    message = error.get("message") if isinstance(error, dict) else error
    return one_line(message) if isinstance(message, str) else type(message).__name__


def parse_chunk(chunk: Any) -> list[StreamEvent]:
    """Events in one SSE chunk (or one whole non-streamed response), as decoded JSON.

    Raises ModelStreamError for an error object or a chunk of the wrong shape."""
    try:
        parsed = _Chunk.model_validate(chunk)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "chunk"
        raise ModelStreamError(
            f"model sent a reply of the wrong shape ({where}: {one_line(problem['msg'], 80)})"
        ) from None
    except RecursionError:
        raise ModelStreamError("model sent a reply nested too deeply") from None
    if parsed.error is not None:
        raise ModelStreamError(f"model server error: {_error_text(parsed.error)}")
    events: list[StreamEvent] = []
    for choice in parsed.choices or []:
        part = choice.delta or choice.message or _Delta()
        text = part.content or choice.text  # chat, or a plain completion
        if text:
            events.append(TextDelta(clean_text(text)))
        for position, call in enumerate(part.tool_calls or []):
            fn = call.function or _Function()
            index = position if call.index is None else call.index
            name = clean_text(fn.name) if fn.name else None
            events.append(ToolCallDelta(index, name, clean_text(fn.arguments or "")))
        if part.audio is not None and part.audio.data:
            audio = _audio_event(part.audio.data)
            if part.audio.transcript:
                audio = replace(audio, transcript=clean_text(part.audio.transcript))
            events.append(audio)
        if choice.finish_reason:
            events.append(Finish(one_line(choice.finish_reason, 40), parsed.usage))
    return events


def _load_json(payload: str | bytes) -> Any:
    try:
        return json.loads(payload)
    except RecursionError:
        raise ModelStreamError("model sent JSON nested too deeply") from None
    except ValueError:
        shown = payload[:80].decode(errors="replace") if isinstance(payload, bytes) else payload
        raise ModelStreamError(f"model sent malformed data: {one_line(shown, 80)!r}") from None


class ModelClient:
    def __init__(
        self,
        base_url: str,
        config: ModelConfig,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.config = config
        self.active_streams = 0
        """Replies streaming right now (background work yields to conversation turns)."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(
                connect=config.connect_timeout_s,
                read=config.first_token_timeout_s,
                write=config.connect_timeout_s,
                pool=config.connect_timeout_s,
            ),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ready(self) -> bool:
        """Whether the backend answers its model list (used to leave SAFE_STOP)."""
        limit = self.config.connect_timeout_s + self.config.first_token_timeout_s
        try:
            with anyio.fail_after(limit):  # a server that drips its answer is not ready
                resp = await self._http.get("/models", timeout=self.config.connect_timeout_s)
        except (httpx.HTTPError, OSError):  # TimeoutError is an OSError
            return False
        return resp.status_code == 200

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        """Stream the reply's events; raises ModelUnavailable or ModelStreamError."""
        self.active_streams += 1
        try:
            async with contextlib.aclosing(self._stream(body)) as events:
                async for event in events:
                    yield event
        finally:
            self.active_streams -= 1

    async def _stream(self, body: dict[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.total_timeout_s
        attempt = 0
        while True:
            started = False
            try:
                async with contextlib.aclosing(self._attempt(body, deadline)) as events:
                    async for event in events:
                        started = True
                        yield event
                return
            except (httpx.HTTPError, OSError) as exc:
                reason = _describe(exc)
                if started:
                    raise ModelStreamError(f"model stream broke off: {reason}") from None
                status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else 0
                retryable = status == 0 or status == 429 or status >= 500
                if not retryable:
                    raise ModelError(f"model server rejected the request: {reason}") from None
                delay = self.config.backoff_s * (2**attempt)
                if attempt >= self.config.retries or loop.time() + delay >= deadline:
                    raise ModelUnavailable(
                        f"model server at {self.base_url} unavailable: {reason}"
                    ) from None
                attempt += 1
                log.warning("model request failed (%s); retry %d in %.1fs", reason, attempt, delay)
                await asyncio.sleep(delay)

    async def _within(self, deadline: float, step: Awaitable[_T]) -> _T:
        """Await one step of the request, bounded by the reply's wall-clock deadline."""
        try:
            # anyio's scope, not asyncio.timeout: the same semantics on Python 3.10
            with anyio.fail_after(deadline - asyncio.get_running_loop().time()):
                return await step
        except TimeoutError:
            raise ModelStreamError(
                f"model reply exceeded total_timeout_s={self.config.total_timeout_s:g}"
            ) from None

    async def _attempt(
        self, body: dict[str, Any], deadline: float
    ) -> AsyncGenerator[StreamEvent, None]:
        path = "/completions" if "prompt" in body else "/chat/completions"
        request = self._http.build_request("POST", path, json=body)
        resp = await self._within(deadline, self._http.send(request, stream=True))
        try:
            if resp.status_code >= 400:
                detail = await self._within(deadline, _error_detail(resp))
                raise httpx.HTTPStatusError(
                    f"HTTP {resp.status_code}: {detail}", request=request, response=resp
                )
            if "text/event-stream" not in resp.headers.get("content-type", ""):
                # a server that ignored stream=true: one whole JSON response
                whole = await self._within(deadline, _read_body(resp))
                parsed = parse_chunk(_load_json(whole))
                if not any(isinstance(e, Finish) for e in parsed):
                    raise ModelStreamError("model reply ended without a finish reason")
                for event in parsed:
                    yield event
                return
            async with contextlib.aclosing(self._sse_events(resp, deadline)) as events:
                async for event in events:
                    yield event
        finally:
            await resp.aclose()

    async def _sse_events(
        self, resp: httpx.Response, deadline: float
    ) -> AsyncGenerator[StreamEvent, None]:
        finished = False
        async with contextlib.aclosing(_lines(resp.aiter_bytes())) as lines:
            while True:
                line = await self._within(deadline, anext(lines, None))
                if line is None:
                    missing = "[DONE]" if finished else "finish reason"
                    raise ModelStreamError(f"model stream ended early (no {missing})")
                if not line.startswith("data:"):
                    continue  # comments (keep-alives), event names, ids
                payload = line[5:].strip()
                if not payload:
                    continue
                if payload == "[DONE]":
                    if not finished:
                        raise ModelStreamError("model reply ended without a finish reason")
                    return
                for event in parse_chunk(_load_json(payload)):
                    finished = finished or isinstance(event, Finish)
                    yield event


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncGenerator[str, None]:
    """SSE lines, whatever the network chunking; a line longer than MAX_LINE_BYTES is an error."""
    partial = bytearray()
    async for chunk in chunks:
        *complete, rest = chunk.split(b"\n")
        for i, line in enumerate(complete):
            if i == 0 and partial:
                line, partial = bytes(partial) + line, bytearray()
            yield line.rstrip(b"\r").decode("utf-8", errors="replace")
        partial += rest
        if len(partial) > MAX_LINE_BYTES:
            raise ModelStreamError(f"model sent a line longer than {MAX_LINE_BYTES >> 20} MiB")
    if partial:
        yield partial.rstrip(b"\r").decode("utf-8", errors="replace")


async def _read_body(resp: httpx.Response, limit: int = MAX_LINE_BYTES) -> bytes:
    body = bytearray()
    async for chunk in resp.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise ModelStreamError(f"model sent a reply longer than {limit >> 20} MiB")
    return bytes(body)


async def _error_detail(resp: httpx.Response) -> str:
    """The server's own words for an HTTP error, read only as far as a line needs."""
    body = bytearray()
    async for chunk in resp.aiter_bytes():
        body += chunk
        if len(body) >= _ERROR_BODY_BYTES:
            break
    text = bytes(body[:_ERROR_BODY_BYTES]).decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return one_line(text)
    if isinstance(data, dict) and "error" in data:
        return _error_text(data["error"])
    return one_line(text)


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.ReadTimeout):
        return "no data within first_token_timeout_s"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    text = str(exc).strip()
    return one_line(text.splitlines()[0]) if text else type(exc).__name__

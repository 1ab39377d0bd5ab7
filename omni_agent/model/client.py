"""Streaming OpenAI-compatible chat client with timeouts, retries and cancellation.

Retries (with exponential backoff) only happen before the first streamed byte: once a
reply is streaming, a failure is reported, never silently replayed, because part of the
answer may already have been spoken. Cancelling the consuming task closes the HTTP stream,
which is how a barge-in stops generation on the server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from omni_agent.config import ModelConfig
from omni_agent.errors import UserError
from omni_agent.media import read_wav

log = logging.getLogger(__name__)


class ModelError(UserError):
    """The model backend failed; the message is one line a user can act on."""


class ModelUnavailable(ModelError):
    """Could not reach the backend (down, refusing, or erroring) after the retries."""


class ModelStreamError(ModelError):
    """The backend failed or stalled after the reply had started streaming."""


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


@dataclass(frozen=True)
class Finish:
    reason: str | None
    usage: dict[str, Any] | None = None


StreamEvent = TextDelta | ToolCallDelta | AudioDelta | Finish


def _audio_event(audio: dict[str, Any]) -> AudioDelta | None:
    data = audio.get("data")
    if not data:
        return None
    pcm, rate = read_wav(base64.b64decode(data))
    return AudioDelta(pcm=pcm, sample_rate=rate)


def parse_chunk(chunk: dict[str, Any]) -> list[StreamEvent]:
    """Events in one SSE chunk (or one whole non-streamed response)."""
    events: list[StreamEvent] = []
    for choice in chunk.get("choices") or []:
        part = choice.get("delta") or choice.get("message") or {}
        text = part.get("content") or choice.get("text")  # chat, or a plain completion
        if text:
            events.append(TextDelta(text))
        for call in part.get("tool_calls") or []:
            fn = call.get("function") or {}
            events.append(
                ToolCallDelta(call.get("index", 0), fn.get("name"), fn.get("arguments") or "")
            )
        if isinstance(part.get("audio"), dict):
            audio = _audio_event(part["audio"])
            if audio is not None:
                events.append(audio)
        if choice.get("finish_reason"):
            events.append(Finish(choice["finish_reason"], chunk.get("usage")))
    return events


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
        try:
            resp = await self._http.get("/models", timeout=self.config.connect_timeout_s)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        """Stream the reply's events; raises ModelUnavailable or ModelStreamError."""
        self.active_streams += 1
        try:
            async for event in self._stream(body):
                yield event
        finally:
            self.active_streams -= 1

    async def _stream(self, body: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        deadline = time.monotonic() + self.config.total_timeout_s
        attempt = 0
        while True:
            started = False
            try:
                path = "/completions" if "prompt" in body else "/chat/completions"
                async with self._http.stream("POST", path, json=body) as resp:
                    if resp.status_code >= 400:
                        detail = (await resp.aread()).decode(errors="replace")[:200]
                        raise httpx.HTTPStatusError(
                            f"HTTP {resp.status_code}: {detail}",
                            request=resp.request,
                            response=resp,
                        )
                    async for event in self._events(resp, deadline):
                        started = True
                        yield event
                return
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                reason = _describe(exc)
                if started:
                    raise ModelStreamError(f"model stream broke off: {reason}") from None
                status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else 0
                retryable = status == 0 or status == 429 or status >= 500
                if not retryable:
                    raise ModelError(f"model server rejected the request: {reason}") from None
                if attempt >= self.config.retries or time.monotonic() >= deadline:
                    raise ModelUnavailable(
                        f"model server at {self.base_url} unavailable: {reason}"
                    ) from None
                delay = self.config.backoff_s * (2**attempt)
                attempt += 1
                log.warning("model request failed (%s); retry %d in %.1fs", reason, attempt, delay)
                await asyncio.sleep(delay)

    async def _events(self, resp: httpx.Response, deadline: float) -> AsyncIterator[StreamEvent]:
        if "text/event-stream" not in resp.headers.get("content-type", ""):
            # a server that ignored stream=true: one whole JSON response
            for event in parse_chunk(json.loads(await resp.aread())):
                yield event
            return
        async for line in resp.aiter_lines():
            if time.monotonic() > deadline:
                raise ModelStreamError(
                    f"model reply exceeded total_timeout_s={self.config.total_timeout_s:g}"
                )
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                return
            try:
                chunk = json.loads(payload)
            except json.JSONDecodeError:
                raise ModelStreamError(f"model sent malformed SSE data: {payload[:80]!r}") from None
            if "error" in chunk:
                raise ModelStreamError(f"model server error: {str(chunk['error'])[:200]}")
            for event in parse_chunk(chunk):
                yield event


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.ReadTimeout):
        return "no data within first_token_timeout_s"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]

"""A scripted stand-in for an OpenAI-compatible model server (a test double).

It speaks the real wire protocol (chat-completions SSE chunks, tool-call deltas, audio in
`delta.audio`) through an httpx transport, so the client code under test is the same code
that talks to vLLM or llama.cpp. Replies come from a script function, instantly or with
per-chunk delays; it can fail before or during a stream, like a server that dies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from omni_agent.media import wav_bytes


@dataclass
class ScriptedReply:
    say: str = ""
    actions: list[dict[str, Any]] = field(default_factory=list)
    audio_pcm: bytes | None = None
    """24 kHz speech to send back (for backends that speak)."""
    audio_transcript: str | None = None
    """Sent with the audio as `audio.transcript`, as vllm-omni does."""
    raw: str | None = None
    """Send this content verbatim instead (to play a model that breaks the format)."""


Script = Callable[[dict[str, Any]], ScriptedReply]


def last_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if p.get("type") == "text")


class ScriptedBackend(httpx.AsyncBaseTransport):
    """Answers /v1/models and /v1/chat/completions from a script (a test double)."""

    def __init__(
        self,
        script: Script,
        *,
        chunk_chars: int = 8,
        chunk_delay_s: float = 0.0,
        first_token_delay_s: float = 0.0,
    ) -> None:
        self.script = script
        self.chunk_chars = chunk_chars
        self.chunk_delay_s = chunk_delay_s
        self.first_token_delay_s = first_token_delay_s
        self.down = False
        """While True the server refuses connections, like a stopped process."""
        self.die_after_chunks: int | None = None
        """Break the connection after this many chunks of the next reply."""
        self.requests: list[dict[str, Any]] = []
        self.cancelled = 0
        """Streams the client closed before the end (barge-in, e-stop)."""
        self.model_time_s = 0.0
        """Time spent producing replies (script and delays): the model's share of a turn."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "scripted"}]})
        body = json.loads(await request.aread())
        self.requests.append(body)
        started = time.perf_counter()
        reply = self.script(body)
        self.model_time_s += time.perf_counter() - started
        chunks = self._chunks(body, reply)
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_Stream(self, chunks),
        )

    def _chunks(self, body: dict[str, Any], reply: ScriptedReply) -> list[dict[str, Any]]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        calls: list[dict[str, Any]] = []
        if reply.raw is not None:
            text = reply.raw
        elif "response_format" in body:
            text = json.dumps({"say": reply.say, "actions": reply.actions})
        else:
            text = reply.say
            calls = [
                {
                    "index": i,
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {
                        "name": a["skill"],
                        "arguments": json.dumps({k: v for k, v in a.items() if k != "skill"}),
                    },
                }
                for i, a in enumerate(reply.actions)
            ]
        out = [chunk({"role": "assistant"})]
        step = self.chunk_chars
        out += [chunk({"content": text[i : i + step]}) for i in range(0, len(text), step)]
        out += [chunk({"tool_calls": [c]}) for c in calls]
        if reply.audio_pcm:
            data = base64.b64encode(wav_bytes(reply.audio_pcm, 24_000)).decode()
            audio: dict[str, Any] = {"data": data}
            if reply.audio_transcript is not None:
                audio["transcript"] = reply.audio_transcript
            out.append(chunk({"audio": audio}))
        out.append(chunk({}, "tool_calls" if calls else "stop"))
        return out


async def _each(chunks: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for chunk in chunks:
        yield chunk


class _Stream(httpx.AsyncByteStream):
    """The SSE body; `chunks` may be produced while streaming (a double that speaks)."""

    def __init__(
        self,
        backend: ScriptedBackend,
        chunks: list[dict[str, Any]] | AsyncIterable[dict[str, Any]],
    ) -> None:
        self.backend = backend
        self.chunks = _each(chunks) if isinstance(chunks, list) else chunks
        self.finished = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        b = self.backend
        if b.first_token_delay_s:
            await asyncio.sleep(b.first_token_delay_s)
            b.model_time_s += b.first_token_delay_s
        n = -1
        async for chunk in self.chunks:
            n += 1
            if b.die_after_chunks is not None and n >= b.die_after_chunks:
                b.die_after_chunks = None
                raise httpx.RemoteProtocolError("peer closed connection mid-stream")
            if b.chunk_delay_s and n:
                await asyncio.sleep(b.chunk_delay_s)
                b.model_time_s += b.chunk_delay_s
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"
        self.finished = True

    async def aclose(self) -> None:
        if not self.finished:
            self.backend.cancelled += 1
        close = getattr(self.chunks, "aclose", None)
        if close is not None:  # stop producing (a double that is still speaking)
            await close()

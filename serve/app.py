"""The OpenAI-compatible HTTP front of an engine: a bounded queue, streaming, cancellation.

Requests wait for one of `concurrency` slots; past `max_queue` waiting they are refused
with 503 at once rather than left to time out. A client that disconnects (the robot's
barge-in closes its stream) cancels its generation, queued or running, and the slot is
free again once the engine has stopped.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from omni_agent.speech.pcm import wav_bytes
from serve.engines import (
    SPEECH_RATE,
    AudioPiece,
    Engine,
    Finished,
    Piece,
    TextPiece,
    spoken_text,
)
from serve.protocol import (
    ChatRequest,
    Generation,
    MediaLimits,
    RequestError,
    decode_request,
    parse_body,
    pcm16,
)

log = logging.getLogger(__name__)

QUEUE_POLL_S = 0.05


class ServeSettings(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    concurrency: int = Field(1, ge=1)
    """Generations running at once, up to what the engine allows (`max_concurrency`)."""
    max_queue: int = Field(32, ge=0)
    max_tokens: int = Field(1024, ge=1)
    max_body_mb: float = Field(64.0, gt=0)
    api_key: str | None = None
    limits: MediaLimits = MediaLimits()


class Scheduler:
    """Runs engine generations in worker threads, at most `concurrency` at a time."""

    def __init__(self, engine: Engine, concurrency: int, max_queue: int) -> None:
        self.engine = engine
        self.slots = asyncio.Semaphore(concurrency)
        self.max_queue = max_queue
        self.waiting = 0
        self.running = 0

    @property
    def full(self) -> bool:
        return self.slots.locked() and self.waiting >= self.max_queue

    async def run(
        self, generation: Generation, cancel: threading.Event
    ) -> AsyncGenerator[Piece, None]:
        if self.full:
            raise RequestError(
                f"server busy: {self.waiting} requests already waiting; retry later", status=503
            )
        # Wait for a slot in arrival order, but leave the queue as soon as the client does.
        acquire = asyncio.ensure_future(self.slots.acquire())
        self.waiting += 1
        try:
            while not acquire.done() and not cancel.is_set():
                await asyncio.wait([acquire], timeout=QUEUE_POLL_S)
        finally:
            self.waiting -= 1
            if not acquire.done():
                acquire.cancel()  # the semaphore passes a slot granted meanwhile on
        if not acquire.done() or acquire.cancelled():
            return
        if cancel.is_set():
            self.slots.release()
            return
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[Piece | BaseException | None] = asyncio.Queue()

        def work() -> None:
            try:
                for piece in self.engine.generate(generation, cancel):
                    loop.call_soon_threadsafe(pieces.put_nowait, piece)
            except BaseException as exc:  # re-raised in the serving task
                loop.call_soon_threadsafe(pieces.put_nowait, exc)
            finally:
                # The slot is free when the engine has really stopped, not when the client
                # left: the GPU is busy until then.
                loop.call_soon_threadsafe(pieces.put_nowait, None)
                loop.call_soon_threadsafe(self._release)

        self.running += 1
        threading.Thread(target=work, name="engine", daemon=True).start()
        try:
            while (item := await pieces.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()  # a consumer that stops early (a hang-up) stops the engine

    def _release(self) -> None:
        self.running -= 1
        self.slots.release()


def error_response(status: int, message: str, param: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return JSONResponse(body, status_code=status)


def wav_b64(samples: np.ndarray, rate: int = SPEECH_RATE) -> str:
    return base64.b64encode(wav_bytes(pcm16(samples), rate)).decode()


def create_app(engine: Engine, settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    concurrency = min(settings.concurrency, engine.max_concurrency)
    if concurrency < settings.concurrency:
        log.warning("%s runs %d generation(s) at a time", engine.name, concurrency)
    scheduler = Scheduler(engine, concurrency, settings.max_queue)
    app = FastAPI(title="omni-agent serve", version="1")

    def unauthorized(request: Request) -> JSONResponse | None:
        """The API-key check. (Not a middleware: Starlette's HTTP middleware hides client
        disconnects from streaming responses, and cancellation depends on them.)"""
        key = settings.api_key
        given = request.headers.get("authorization", "")
        if key and not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            return error_response(401, "missing or wrong API key (Authorization: Bearer)")
        return None

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        body = {
            "engine": engine.name,
            "model": engine.model_id,
            "running": scheduler.running,
            "waiting": scheduler.waiting,
        }
        if scheduler.full:
            return JSONResponse({"status": "busy", **body}, status_code=503)
        return JSONResponse({"status": "ready", **body})

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        model = {
            "id": engine.model_id,
            "object": "model",
            "created": 0,
            "owned_by": "omni-agent",
            "engine": engine.name,
            "voices": engine.voices,
        }
        return JSONResponse({"object": "list", "data": [model]})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        cap = settings.max_body_mb * 1e6
        raw = bytearray()
        async for chunk in request.stream():  # also bounds uploads without a Content-Length
            raw += chunk
            if len(raw) > cap:
                return error_response(413, f"request is over {settings.max_body_mb:.0f} MB")
        try:
            body = parse_body(bytes(raw))
        except RequestError as exc:
            return error_response(exc.status, str(exc))
        try:
            chat_request = ChatRequest.model_validate(body)
            # Media decoding takes a while: off the event loop, which serves every stream.
            generation = await asyncio.to_thread(
                decode_request, chat_request, settings.limits, settings.max_tokens
            )
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            return error_response(400, f"{where}: {problem['msg']}", param=where)
        except RequestError as exc:
            return error_response(exc.status, str(exc), exc.param)
        if generation.audio_out and generation.voice not in (None, *engine.voices):
            known = ", ".join(engine.voices) or "none: this model does not speak"
            return error_response(400, f"unknown voice {generation.voice!r} (voices: {known})")
        cancel = threading.Event()
        watcher = asyncio.create_task(_watch_disconnect(request, cancel))
        stream = scheduler.run(generation, cancel)
        reply = _Reply(engine.model_id, generation)
        try:
            first = await anext(stream, None)
        except RequestError as exc:
            watcher.cancel()
            return error_response(exc.status, str(exc), exc.param)
        except Exception as exc:
            watcher.cancel()
            log.exception("generation failed")
            return error_response(500, f"generation failed: {_one_line(exc)}")
        if not chat_request.stream:
            try:
                pieces = [first] if first is not None else []
                pieces += [piece async for piece in stream]
            except Exception as exc:
                log.exception("generation failed")
                return error_response(500, f"generation failed: {_one_line(exc)}")
            finally:
                watcher.cancel()
            return JSONResponse(reply.whole(pieces))

        async def events() -> AsyncGenerator[str, None]:
            watcher.cancel()  # from here on the response itself watches for a hang-up
            try:
                if first is not None:
                    yield _sse(reply.chunk(first))
                async for piece in stream:
                    yield _sse(reply.chunk(piece))
                if chat_request.stream_options and chat_request.stream_options.include_usage:
                    yield _sse(reply.usage_chunk())
            except Exception as exc:
                log.exception("generation failed mid-stream")
                failure = f"generation failed: {_one_line(exc)}"
                yield _sse({"error": {"message": failure, "code": 500}})
            finally:
                await stream.aclose()
            yield "data: [DONE]\n\n"

        return _CancellingStream(events(), cancel)

    return app


class _CancellingStream(StreamingResponse):
    """A server-sent event stream that cancels its generation when the client hangs up.

    Starlette stops sending on a disconnect but leaves the body iterator suspended; closing
    it here runs the scheduler's cleanup, which stops the engine and frees the slot."""

    def __init__(self, events: AsyncGenerator[str, None], cancel: threading.Event) -> None:
        super().__init__(events, media_type="text/event-stream")
        self.events = events
        self.cancel = cancel

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.cancel.set()
            await self.events.aclose()


async def _watch_disconnect(request: Request, cancel: threading.Event) -> None:
    while not cancel.is_set():
        if await request.is_disconnected():
            cancel.set()
            return
        await asyncio.sleep(0.05)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _sse(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"


class _Reply:
    """Builds response bodies in the OpenAI / vllm-omni shape for one request."""

    def __init__(self, model: str, generation: Generation) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.generation = generation
        self.finished: Finished | None = None
        self.started = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def chunk(self, piece: Piece) -> dict[str, Any]:
        head: dict[str, Any] = {} if self.started else {"role": "assistant"}
        self.started = True
        if isinstance(piece, TextPiece):
            return self._chunk({**head, "content": piece.text})
        if isinstance(piece, AudioPiece):
            audio = {"id": f"audio-{self.id}", "data": wav_b64(piece.samples), "format": "wav"}
            return self._chunk({**head, "audio": audio})
        self.finished = piece
        return self._chunk(head, _finish_reason(piece))

    def usage(self) -> dict[str, int]:
        done = self.finished or Finished("stop", 0, 0)
        return {
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens,
        }

    def usage_chunk(self) -> dict[str, Any]:
        chunk = self._chunk({})
        chunk["choices"] = []
        chunk["usage"] = self.usage()
        return chunk

    def whole(self, pieces: list[Piece]) -> dict[str, Any]:
        text = "".join(p.text for p in pieces if isinstance(p, TextPiece))
        audio = [p.samples for p in pieces if isinstance(p, AudioPiece)]
        self.finished = next((p for p in pieces if isinstance(p, Finished)), None)
        reason = _finish_reason(self.finished) if self.finished else "stop"
        choices: list[dict[str, Any]] = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": reason,
            }
        ]
        if audio:
            # vllm-omni's shape: the speech is a second choice, base64 WAV at 24 kHz.
            wav = {
                "id": f"audio-{self.id}",
                "data": wav_b64(np.concatenate(audio)),
                "format": "wav",
                "expires_at": 0,
                "transcript": spoken_text(text, self.generation.json_schema),
            }
            choices.append(
                {
                    "index": 1,
                    "message": {"role": "assistant", "content": None, "audio": wav},
                    "finish_reason": reason,
                }
            )
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage(),
        }


def _finish_reason(done: Finished) -> str:
    # A cancelled generation only reaches a client that is still listening (a timeout).
    return "stop" if done.reason == "cancelled" else done.reason

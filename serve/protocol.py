"""The OpenAI chat-completions request, checked and decoded into what an engine consumes.

Everything a client can get wrong is caught here, before a request waits for the GPU:
unknown roles, unsupported parts, undecodable or oversized media. Each problem becomes a
`RequestError` with an HTTP status and one line saying what to change.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from omni_agent.speech.pcm import read_wav, resample, to_int16

AUDIO_RATE = 16_000
"""Both engines' audio encoders (Whisper) take 16 kHz mono."""


class RequestError(Exception):
    """A request the server will not run; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


@dataclass(frozen=True)
class MediaLimits:
    """Per-request limits (like vLLM's --limit-mm-per-prompt), so one request cannot
    exhaust GPU memory for everyone behind it in the queue."""

    max_images: int = 8
    max_audios: int = 4
    max_videos: int = 1
    max_image_pixels: int = 4096 * 4096
    max_audio_s: float = 60.0
    max_video_frames: int = 32
    max_file_mb: float = 64.0
    allowed_local_path: Path | None = None
    """Directory whose files may be named by file:// URLs; None refuses local files."""


# --- the request body -------------------------------------------------------------------


class JsonSchemaFormat(BaseModel):
    name: str = "reply"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    """llama.cpp's spelling: a schema beside `type: json_object`."""


class AudioOutput(BaseModel):
    voice: str | None = None
    format: Literal["wav"] = "wav"


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat-completions body that the engines honour; others are
    accepted and ignored, as OpenAI clients send many."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    """Ignored: one model is served (as llama.cpp's server does); clients name it freely."""
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    modalities: list[Literal["text", "audio"]] = ["text"]
    audio: AudioOutput | None = None
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None


# --- decoded conversation ---------------------------------------------------------------


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    rgb: np.ndarray  # HxWx3 uint8


@dataclass(frozen=True)
class AudioPart:
    samples: np.ndarray  # float32 mono at AUDIO_RATE


@dataclass(frozen=True)
class VideoPart:
    frames: np.ndarray  # TxHxWx3 uint8


Part = TextPart | ImagePart | AudioPart | VideoPart


@dataclass
class Message:
    role: Literal["system", "user", "assistant"]
    parts: list[Part]

    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


@dataclass
class Generation:
    """One decoded request, ready for an engine."""

    messages: list[Message]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    audio_out: bool
    voice: str | None
    json_schema: dict[str, Any] | None = None
    """Set when the client asked for JSON; engines without constrained decoding put the
    schema in the instructions and the reply is checked by the client."""


MAX_JSON_DEPTH = 64
"""Deepest nesting a request body may have: OpenAI bodies (schemas included) need far less,
and parsing or copying one nested 100k deep exhausts the interpreter's stack."""


def parse_body(raw: bytes) -> Any:
    """The JSON of a request body, refused (400) when it is not JSON or nested too deeply."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise RequestError(f"request body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise RequestError("request body is not JSON") from None
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:  # iterative: the check itself must not recurse
        node, depth = stack.pop()
        children = list(node.values()) if isinstance(node, dict) else node
        if not isinstance(children, list):
            continue
        if children and depth > MAX_JSON_DEPTH:
            raise RequestError(f"request body is nested deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)
    return body


def decode_request(request: ChatRequest, limits: MediaLimits, max_tokens: int) -> Generation:
    if request.tools:
        raise RequestError(
            "tool calls are not supported by omni-agent serve; ask for a JSON reply with "
            "response_format {type: json_schema}",
            param="tools",
        )
    messages = [_decode_message(i, m, limits) for i, m in enumerate(request.messages)]
    counts = _count_media(messages)
    for kind, limit in (
        ("image", limits.max_images),
        ("audio", limits.max_audios),
        ("video", limits.max_videos),
    ):
        if counts[kind] > limit:
            raise RequestError(
                f"{counts[kind]} {kind} parts in one request; this server takes at most {limit}",
                status=413,
                param="messages",
            )
    if messages[-1].role == "assistant":
        raise RequestError("the last message must not be the assistant's", param="messages")
    fmt = request.response_format
    schema: dict[str, Any] | None = None
    if fmt is not None and fmt.type != "text":
        schema = (fmt.json_schema.schema_ if fmt.json_schema else fmt.schema_) or {"type": "object"}
    wanted = request.max_completion_tokens or request.max_tokens or max_tokens
    return Generation(
        messages=messages,
        max_tokens=min(wanted, max_tokens),
        temperature=request.temperature,
        top_p=request.top_p,
        seed=request.seed,
        audio_out="audio" in request.modalities,
        voice=request.audio.voice if request.audio else None,
        json_schema=schema,
    )


def _count_media(messages: list[Message]) -> dict[str, int]:
    counts = {"image": 0, "audio": 0, "video": 0}
    for message in messages:
        for part in message.parts:
            if isinstance(part, ImagePart):
                counts["image"] += 1
            elif isinstance(part, AudioPart):
                counts["audio"] += 1
            elif isinstance(part, VideoPart):
                counts["video"] += 1
    return counts


def _decode_message(index: int, message: ChatMessage, limits: MediaLimits) -> Message:
    where = f"messages[{index}]"
    if message.role not in ("system", "user", "assistant"):
        raise RequestError(
            f"{where}: role {message.role!r} is not supported (system, user, assistant)",
            param=where,
        )
    content = message.content
    if content is None:
        raise RequestError(f"{where}: content is missing", param=where)
    if isinstance(content, str):
        return Message(message.role, [TextPart(content)])  # type: ignore[arg-type]
    parts = [_decode_part(f"{where}.content[{j}]", p, limits) for j, p in enumerate(content)]
    if message.role != "user" and any(not isinstance(p, TextPart) for p in parts):
        raise RequestError(f"{where}: only user messages may carry media", param=where)
    return Message(message.role, parts)  # type: ignore[arg-type]


def _decode_part(where: str, part: dict[str, Any], limits: MediaLimits) -> Part:
    kind = part.get("type")
    try:
        if kind == "text":
            return TextPart(str(part["text"]))
        if kind == "image_url":
            return ImagePart(decode_image(_fetch(_url(part, "image_url"), limits), limits))
        if kind == "input_audio":
            spec = part["input_audio"]
            if spec.get("format", "wav") != "wav":
                raise RequestError(f"{where}: input_audio format must be 'wav'", param=where)
            return AudioPart(decode_wav(_b64(spec["data"]), limits))
        if kind == "audio_url":
            return AudioPart(decode_wav(_fetch(_url(part, "audio_url"), limits), limits))
        if kind == "video_url":
            spec = part["video_url"]
            wanted = spec.get("num_frames") if isinstance(spec, dict) else None
            frames = min(int(wanted or 8), limits.max_video_frames)
            if frames < 1:
                raise RequestError("num_frames must be at least 1")
            return VideoPart(decode_video(_fetch(_url(part, "video_url"), limits), frames))
    except RequestError as exc:
        raise RequestError(f"{where}: {exc}", exc.status, param=where) from None
    except (KeyError, TypeError, AttributeError, ValueError, ArithmeticError):
        raise RequestError(f"{where}: malformed {kind} part", param=where) from None
    raise RequestError(
        f"{where}: part type {kind!r} is not supported "
        "(text, image_url, input_audio, audio_url, video_url)",
        param=where,
    )


def _url(part: dict[str, Any], key: str) -> str:
    value = part[key]
    return str(value["url"] if isinstance(value, dict) else value)


def _b64(data: str) -> bytes:
    if not isinstance(data, str):
        raise RequestError("base64 data must be a string")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("invalid base64 data") from None


def _fetch(url: str, limits: MediaLimits) -> bytes:
    """The bytes of a data: or file:// URL; remote URLs are never fetched."""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if not header.endswith(";base64"):
            raise RequestError("data URLs must be base64 (data:<mime>;base64,...)")
        return _b64(payload)
    if url.startswith("file:"):
        parsed = urlparse(url)
        root = limits.allowed_local_path
        if root is None:
            raise RequestError(
                "local files are refused; start the server with --allowed-local-media-path",
                status=403,
            )
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise RequestError("file URLs must name an absolute local path (file:///...)")
        # resolve() follows symlinks and '..', so the check is on the real location
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(root.resolve()):
            raise RequestError(f"{path} is outside the allowed media path {root}", status=403)
        if not path.is_file():
            raise RequestError(f"no such file: {path}", status=404)
        if path.stat().st_size > limits.max_file_mb * 1e6:
            raise RequestError(f"{path} is over {limits.max_file_mb:.0f} MB", status=413)
        return path.read_bytes()
    raise RequestError("only data: and file:// URLs are accepted; send media as a data URL")


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the image's header alone, without decoding its pixels: a few
    hundred KB of PNG can claim 16000x16000 pixels, 768 MB once decoded."""
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

    # The format's own header reader, picked by magic bytes (not Image.open, whose
    # decompression-bomb guard refuses before telling the size, by a rule of its own).
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        reader: Any = PngImagePlugin.PngImageFile
    elif data.startswith(b"\xff\xd8"):
        reader = JpegImagePlugin.JpegImageFile
    elif data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        reader = WebPImagePlugin.WebPImageFile
    elif data.startswith(b"BM"):
        reader = BmpImagePlugin.BmpImageFile
    else:
        raise RequestError("image could not be decoded (PNG, JPEG, WebP or BMP)")
    try:
        with reader(io.BytesIO(data)) as image:
            width, height = image.size
    except (SyntaxError, OSError, ValueError, struct.error, IndexError):
        raise RequestError("image could not be decoded (PNG, JPEG, WebP or BMP)") from None
    return int(width), int(height)


def decode_image(data: bytes, limits: MediaLimits) -> np.ndarray:
    import cv2

    width, height = image_size(data)
    if width * height > limits.max_image_pixels:
        raise RequestError(
            f"image of {width}x{height} pixels is over the limit of {limits.max_image_pixels}",
            status=413,
        )
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[0] * bgr.shape[1] > limits.max_image_pixels:
        raise RequestError("image could not be decoded (PNG, JPEG, WebP or BMP)")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def decode_wav(data: bytes, limits: MediaLimits) -> np.ndarray:
    """A 16-bit PCM WAV as float32 mono at 16 kHz (channels mixed down, resampled)."""
    try:
        pcm, rate = read_wav(data)
    except (wave.Error, EOFError):
        raise RequestError("audio is not a WAV file") from None
    except ValueError as exc:
        raise RequestError(f"unusable WAV: {exc}") from None
    if rate <= 0:
        raise RequestError(f"WAV header is invalid (sample rate {rate})")
    pcm = pcm[: len(pcm) // 2 * 2]
    seconds = len(pcm) / 2 / rate
    if seconds > limits.max_audio_s:
        raise RequestError(
            f"audio of {seconds:.1f} s is over the limit of {limits.max_audio_s:.0f} s", status=413
        )
    return np.frombuffer(resample(pcm, rate, AUDIO_RATE), "<i2").astype(np.float32) / 32768.0


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as 16-bit PCM bytes."""
    return to_int16(np.clip(samples, -1.0, 1.0) * 32767.0).tobytes()


def decode_video(data: bytes, num_frames: int) -> np.ndarray:
    """`num_frames` RGB frames spread evenly over the clip; only those frames are decoded."""
    import tempfile

    import cv2

    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(data)
        f.flush()
        capture = cv2.VideoCapture(f.name)
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        # Qwen-style vision encoders pair frames in time, so keep an even count.
        count = max(2, min(num_frames, max(total, 1)) // 2 * 2)
        picks = set(np.linspace(0, max(total - 1, 0), count).round().astype(int).tolist())
        frames = []
        for index in range(total):
            if not capture.grab():
                break
            if index in picks:
                ok, bgr = capture.retrieve()
                if ok:
                    frames.append(bgr[:, :, ::-1])
        capture.release()
    if not frames:
        raise RequestError("video could not be decoded (MP4/H.264, WebM, AVI)")
    if len(frames) % 2:  # keep the count even
        frames.append(frames[-1])
    return np.stack(frames)

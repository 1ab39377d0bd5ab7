"""`omni-agent serve` with a tiny random Qwen2.5-Omni through the real transformers code."""

from __future__ import annotations

import base64
import io
import json
import tempfile
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from omni_agent.config import ModelConfig
from omni_agent.media import wav_bytes
from omni_agent.model.client import AudioDelta, Finish, ModelClient, TextDelta
from serve.engines import Engine
from serve.protocol import MediaLimits
from tests.serve.conftest import serving


def png_url(size: int = 56) -> str:
    import cv2

    rgb = (np.random.default_rng(1).random((size, size, 3)) * 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", rgb)
    assert ok
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()


def wav_b64(seconds: float = 1.0, rate: int = 16_000) -> str:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.2 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2").tobytes()
    return base64.b64encode(wav_bytes(pcm, rate)).decode()


def mp4_url(frames: int = 4) -> str:
    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "clip.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*"mp4v"), 4.0, (56, 56))
        for i in range(frames):
            writer.write(np.full((56, 56, 3), 40 * i, np.uint8))
        writer.release()
        data = Path(path).read_bytes()
    return "data:video/mp4;base64," + base64.b64encode(data).decode()


def user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are Robbie, a home robot."},
        {"role": "user", "content": list(parts)},
    ]


TEXT = {"type": "text", "text": "What do you see and hear?"}
IMAGE = {"type": "image_url", "image_url": {"url": png_url()}}
AUDIO = {"type": "input_audio", "input_audio": {"data": wav_b64(), "format": "wav"}}
BAD_PNG = "data:image/png;base64,AAAA"
_WAV = wav_bytes(b"\x01\x00" * 10, 16_000)
ZERO_RATE_WAV = base64.b64encode(_WAV[:24] + bytes(4) + _WAV[28:]).decode()  # header: rate 0
VIDEO = {"type": "video_url", "video_url": {"url": mp4_url()}}


def sse(response: httpx.Response) -> list[dict[str, Any]]:
    lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def decode_wav(data: str) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(base64.b64decode(data))) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()


def prompt_tokens(url: str, messages: list[dict[str, Any]]) -> int:
    body = {"messages": messages, "max_tokens": 2}
    response = httpx.post(f"{url}/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return int(response.json()["usage"]["prompt_tokens"])


def test_lists_the_model_and_its_voices(qwen_url: str) -> None:
    models = httpx.get(f"{qwen_url}/models").json()["data"]
    assert [m["id"] for m in models] == ["tiny-qwen2.5-omni"]
    assert models[0]["voices"] == ["Chelsie"]
    base = qwen_url.removesuffix("/v1")
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    assert httpx.get(f"{base}/ready").json()["status"] == "ready"


def test_every_media_part_reaches_the_model(qwen_url: str) -> None:
    """Each part adds its placeholder tokens to the prompt the model actually read."""
    text_only = prompt_tokens(qwen_url, user(TEXT))
    with_image = prompt_tokens(qwen_url, user(IMAGE, TEXT))
    with_audio = prompt_tokens(qwen_url, user(AUDIO, TEXT))
    with_video = prompt_tokens(qwen_url, user(VIDEO, TEXT))
    # 56x56 image: 4x4 patches merged 2x2 -> 4 tokens, plus its two boundary tokens.
    assert with_image - text_only == 4 + 2
    # 1 s of audio: 100 mel frames -> 25 audio tokens, plus its two boundary tokens.
    assert with_audio - text_only == 25 + 2
    assert with_video > text_only + 2
    system, question = user(TEXT)
    history = [
        system,
        {"role": "user", "content": "Hi, I'm Alice."},
        {"role": "assistant", "content": "Hello Alice!"},
        question,
    ]
    assert prompt_tokens(qwen_url, history) > text_only + len("Hi, I'm Alice.Hello Alice!")


def test_streams_text_then_speech_in_the_vllm_omni_shape(qwen_url: str) -> None:
    body = {
        "messages": user(IMAGE, AUDIO, TEXT),
        "stream": True,
        "stream_options": {"include_usage": True},
        "modalities": ["text", "audio"],
        "max_tokens": 8,
    }
    response = httpx.post(f"{qwen_url}/chat/completions", json=body, timeout=120)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = sse(response)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0]["role"] == "assistant"
    assert any(d.get("content") for d in deltas)
    audio = [decode_wav(d["audio"]["data"]) for d in deltas if "audio" in d]
    assert audio and all(rate == 24_000 for _, rate in audio)
    text_at = max(i for i, d in enumerate(deltas) if d.get("content"))
    audio_at = min(i for i, d in enumerate(deltas) if "audio" in d)
    assert text_at < audio_at  # speech follows the text it speaks
    seconds = sum(len(pcm) for pcm, _ in audio) / 24_000
    assert 0 < seconds <= 0.6  # --max-speech-s 0.4 bounds the talker (20 codec tokens)
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] in ("stop", "length")
    assert chunks[-1]["usage"]["completion_tokens"] <= 8


def test_non_streamed_speech_is_a_second_choice(qwen_url: str) -> None:
    body = {"messages": user(TEXT), "modalities": ["text", "audio"], "max_tokens": 4}
    reply = httpx.post(f"{qwen_url}/chat/completions", json=body, timeout=120).json()
    assert reply["object"] == "chat.completion"
    assert isinstance(reply["choices"][0]["message"]["content"], str)
    pcm, rate = decode_wav(reply["choices"][1]["message"]["audio"]["data"])
    assert rate == 24_000 and len(pcm) > 0


async def test_the_agents_client_hears_the_speech(qwen_url: str) -> None:
    client = ModelClient(qwen_url, ModelConfig())
    body = {
        "messages": user(TEXT),
        "stream": True,
        "modalities": ["text", "audio"],
        "max_tokens": 4,
    }
    try:
        events = [event async for event in client.stream(body)]
    finally:
        await client.aclose()
    assert any(isinstance(e, TextDelta) for e in events)
    audio = [e for e in events if isinstance(e, AudioDelta)]
    assert audio and {e.sample_rate for e in audio} == {24_000}
    assert isinstance(events[-1], Finish)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"messages": []}, 400, "messages"),
        ({"messages": user({"type": "input_audio", "input_audio": {"data": "%%%"}})}, 400,
         "content[0]: invalid base64"),
        ({"messages": user({"type": "image_url", "image_url": {"url": "https://x/y.png"}})}, 400,
         "data URL"),
        ({"messages": user({"type": "image_url", "image_url": {"url": BAD_PNG}})}, 400,
         "could not be decoded"),
        ({"messages": user({"type": "input_audio", "input_audio": {"data": wav_b64(61.0)}})}, 413,
         "over the limit of 60 s"),
        ({"messages": user(*[IMAGE] * 9)}, 413, "at most 8"),
        ({"messages": user({"type": "file", "file": {}})}, 400, "type 'file' is not supported"),
        ({"messages": [{"role": "tool", "content": "x"}]}, 400, "role 'tool'"),
        ({"messages": user(TEXT), "tools": [{"type": "function"}]}, 400, "response_format"),
        ({"messages": user(TEXT), "modalities": ["text", "audio"], "audio": {"voice": "Bob"}}, 400,
         "unknown voice 'Bob'"),
        ({"messages": user(TEXT), "temperature": 9}, 400, "temperature"),
        ({"messages": user({"type": "input_audio", "input_audio": {"data": 7}})}, 400,
         "must be a string"),
        ({"messages": user({"type": "input_audio", "input_audio": {"data": ZERO_RATE_WAV}})}, 400,
         "WAV header is invalid"),
        ({"messages": user({"type": "video_url", "video_url": {"url": "x", "num_frames": "a"}})},
         400, "malformed video_url part"),
        ({"messages": user({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}})},
         403, "--allowed-local-media-path"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_status_and_a_reason(
    qwen_url: str, body: dict[str, Any], status: int, says: str
) -> None:
    response = httpx.post(f"{qwen_url}/chat/completions", json=body, timeout=60)
    assert response.status_code == status
    error = response.json()["error"]
    assert says in error["message"] and "\n" not in error["message"]


def test_a_body_that_is_not_json_is_refused(qwen_url: str) -> None:
    response = httpx.post(f"{qwen_url}/chat/completions", content=b"{nope", timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "request body is not JSON"


def test_local_files_are_read_only_under_the_allowed_path(
    qwen_engine: Engine, tmp_path: Path
) -> None:
    import cv2

    allowed = tmp_path / "media"
    allowed.mkdir()
    cv2.imwrite(str(allowed / "frame one.png"), np.zeros((56, 56, 3), np.uint8))
    (tmp_path / "secret.png").write_bytes((allowed / "frame one.png").read_bytes())
    (allowed / "link.png").symlink_to(tmp_path / "secret.png")
    limits = MediaLimits(allowed_local_path=allowed)

    def ask(url: str) -> httpx.Response:
        image = {"type": "image_url", "image_url": {"url": url}}
        body = {"messages": user(image, TEXT), "max_tokens": 1}
        return httpx.post(f"{base}/chat/completions", json=body, timeout=60)

    with serving(qwen_engine, limits=limits) as base:
        assert ask(f"file://{allowed}/frame%20one.png").status_code == 200
        for escape in (f"file://{allowed}/../secret.png", f"file://{allowed}/link.png"):
            refused = ask(escape)
            assert refused.status_code == 403
            assert "outside the allowed media path" in refused.json()["error"]["message"]
        assert ask(f"file://{allowed}/missing.png").status_code == 404
        assert ask("file:relative.png").status_code == 400

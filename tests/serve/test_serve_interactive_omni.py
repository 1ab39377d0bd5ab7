"""The InteractiveOmni engine against a TEST DOUBLE of its documented `chat()` interface,
and the serving behaviour (cancellation, queueing) that any engine gets."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import httpx

from omni_agent.media import wav_bytes
from serve.engines import load_engine
from tests.serve.conftest import serving
from tests.serve.interactive_omni_double import build_double
from tests.serve.test_serve_qwen_omni import AUDIO, IMAGE, TEXT, VIDEO, decode_wav, sse, user

SPEECH_PROMPT = "You are a highly advanced multimodal conversational AI"


def test_parts_become_files_in_the_models_own_format(double_dir: Path) -> None:
    engine = load_engine("interactive-omni", double_dir, device="cpu")
    with serving(engine) as url:
        body = {"messages": user(IMAGE, AUDIO, VIDEO, TEXT), "modalities": ["text", "audio"]}
        reply = httpx.post(f"{url}/chat/completions", json=body, timeout=60).json()
    assert reply["choices"][0]["message"]["content"] == "Hello there."
    pcm, rate = decode_wav(reply["choices"][1]["message"]["audio"]["data"])
    assert rate == 24_000 and abs(len(pcm) / rate - 0.06 * len("Hello there.")) < 0.01
    call = engine.model.calls[-1]  # type: ignore[attr-defined]
    system, message = call["messages"]
    assert system["content"].startswith(SPEECH_PROMPT)  # speech needs the documented prompt
    assert system["content"].endswith("You are Robbie, a home robot.")
    assert [p["type"] for p in message["content"]] == ["image", "audio", "video", "text"]
    suffixes = [Path(p[p["type"]]).suffix for p in message["content"][:3]]
    assert suffixes == [".png", ".wav", ".mp4"]
    assert not Path(message["content"][0]["image"]).exists()  # temporary files are removed
    assert (call["max_num"], call["frame"], call["generate_audio"]) == (12, 8, True)
    assert {"streamer", "stopping_criteria"} <= set(call["config"])


def test_a_json_reply_speaks_only_its_say_field(tmp_path: Path) -> None:
    say = "Hello Alice, I am Robbie."
    folder = build_double(tmp_path / "m", json_reply=json.dumps({"say": say, "actions": []}))
    engine = load_engine("interactive-omni", folder, device="cpu")
    schema = {"type": "object", "properties": {"say": {"type": "string"}}}
    body = {
        "messages": user(TEXT),
        "stream": True,
        "modalities": ["text", "audio"],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
    }
    with serving(engine) as url:
        chunks = sse(httpx.post(f"{url}/chat/completions", json=body, timeout=60))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    text = "".join(d.get("content") or "" for d in deltas)
    assert json.loads(text)["say"] == say
    assert sum(1 for d in deltas if d.get("content")) > 1  # the text streamed
    audio = [decode_wav(d["audio"]["data"])[0] for d in deltas if "audio" in d]
    assert abs(sum(map(len, audio)) / 24_000 - 0.06 * len(say)) < 0.01
    first, second = engine.model.calls  # type: ignore[attr-defined]
    assert "JSON schema" in first["messages"][0]["content"] and not first["generate_audio"]
    assert second["messages"][-1]["content"].endswith(say) and second["generate_audio"]


def test_voices_come_from_clips_beside_the_model(double_dir: Path) -> None:
    (double_dir / "voices").mkdir()
    (double_dir / "voices" / "robbie.wav").write_bytes(wav_bytes(b"\0\0" * 1600, 16_000))
    engine = load_engine("interactive-omni", double_dir, device="cpu")
    with serving(engine) as url:
        voices = httpx.get(f"{url}/models").json()["data"][0]["voices"]
        body = {
            "messages": user(TEXT),
            "modalities": ["text", "audio"],
            "audio": {"voice": "robbie"},
        }
        assert httpx.post(f"{url}/chat/completions", json=body, timeout=60).status_code == 200
    assert voices == ["default", "robbie"]
    assert float(engine.model.calls[-1]["speaker_embedding"].sum()) == 192  # type: ignore[attr-defined]


def test_a_client_that_hangs_up_cancels_its_generation(tmp_path: Path) -> None:
    reply = "word " * 200  # 1000 tokens at 10 ms each: 10 s if nobody stops it
    engine = load_engine(
        "interactive-omni", build_double(tmp_path / "m", reply=reply, delay_s=0.01), device="cpu"
    )
    with serving(engine) as url:
        body = {"messages": user(TEXT), "stream": True, "max_tokens": 2000}
        started = time.monotonic()
        with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=30) as response:
            for line in response.iter_lines():
                if '"content"' in line:
                    break  # the robot heard a barge-in: drop the stream
        while httpx.get(url.removesuffix("/v1") + "/ready").json()["running"]:
            assert time.monotonic() - started < 5, "generation still running after hang-up"
            time.sleep(0.02)
    call = engine.model.calls[-1]  # type: ignore[attr-defined]
    assert call["emitted"] < 300  # of 1000 tokens


def test_a_full_queue_refuses_at_once_and_the_rest_are_served_in_turn(tmp_path: Path) -> None:
    engine = load_engine(
        "interactive-omni", build_double(tmp_path / "m", delay_s=0.02), device="cpu"
    )
    statuses: list[int] = []
    with serving(engine, concurrency=1, max_queue=1) as url:

        def ask() -> None:
            body = {"messages": user(TEXT)}
            statuses.append(
                httpx.post(f"{url}/chat/completions", json=body, timeout=30).status_code
            )

        threads = [threading.Thread(target=ask) for _ in range(3)]
        for thread in threads:
            thread.start()
            time.sleep(0.05)
        for thread in threads:
            thread.join()
    assert sorted(statuses) == [200, 200, 503]
    assert len(engine.model.calls) == 2  # type: ignore[attr-defined]


def test_a_missing_model_folder_is_one_clear_line(tmp_path: Path) -> None:
    from serve.protocol import RequestError

    try:
        load_engine("interactive-omni", tmp_path / "nowhere")
    except RequestError as exc:
        assert "no model at" in str(exc) and "config.json" in str(exc)
    else:
        raise AssertionError("expected a RequestError")


def test_api_key_is_required_when_set(double_dir: Path) -> None:
    engine = load_engine("interactive-omni", double_dir, device="cpu")
    with serving(engine, api_key="s3cret") as url:
        assert httpx.get(f"{url}/models").status_code == 401
        ok = httpx.get(f"{url}/models", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert httpx.get(url.removesuffix("/v1") + "/health").status_code == 200


def test_a_client_that_hangs_up_while_queued_leaves_the_queue(tmp_path: Path) -> None:
    engine = load_engine(
        "interactive-omni",
        build_double(tmp_path / "m", reply="word " * 100, delay_s=0.01),
        device="cpu",
    )
    with serving(engine, max_queue=1) as url:
        ready = url.removesuffix("/v1") + "/ready"
        body = {"messages": user(TEXT), "stream": True}
        with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=30) as running:
            lines = running.iter_lines()  # kept: dropping the iterator closes the stream
            next(lines)  # the first request holds the only slot

            def wait_in_queue() -> None:
                with contextlib.suppress(httpx.HTTPError):
                    httpx.post(
                        f"{url}/chat/completions", json={"messages": user(TEXT)}, timeout=0.5
                    )

            waiter = threading.Thread(target=wait_in_queue)
            waiter.start()
            waiter.join()  # it gave up after 0.5 s, while still queued
            deadline = time.monotonic() + 3
            while httpx.get(ready).json()["waiting"]:
                assert time.monotonic() < deadline, "the abandoned request stayed queued"
                time.sleep(0.02)
            # the queue has room again for a live request
            assert httpx.get(ready).status_code == 200
    assert len(engine.model.calls) == 1  # type: ignore[attr-defined]

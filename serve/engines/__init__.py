"""Engines: one omni model each, behind the same small interface.

An engine turns a decoded `Generation` into a stream of text and audio pieces. It runs in
a worker thread (model code is blocking) and checks `cancel` between tokens, so a client
that hangs up (a barge-in) frees the GPU within a token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from serve.protocol import Generation, RequestError

SPEECH_RATE = 24_000
"""Both engines' vocoders speak at 24 kHz, as vllm-omni does."""


@dataclass(frozen=True)
class TextPiece:
    text: str


@dataclass(frozen=True)
class AudioPiece:
    samples: np.ndarray  # float32 mono at SPEECH_RATE, in [-1, 1]


@dataclass(frozen=True)
class Finished:
    reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int


Piece = TextPiece | AudioPiece | Finished


class Engine(Protocol):
    name: str
    model_id: str
    voices: list[str]
    max_concurrency: int
    """Generations it can run at once. transformers models keep per-call state on the
    model (Qwen's rope offsets, the global seed), so theirs is 1."""

    def generate(self, request: Generation, cancel: threading.Event) -> Iterator[Piece]:
        """Text pieces as they are decoded, then audio pieces when asked for, then one
        `Finished`; stops early (reason "cancelled") once `cancel` is set."""
        ...


ENGINES = ("qwen2.5-omni", "interactive-omni")


def load_engine(
    kind: str, path: Path, device: str = "auto", dtype: str = "auto", max_speech_s: float = 60.0
) -> Engine:
    """The engine for `kind`, with weights from the local directory `path`."""
    if not path.is_dir() or not (path / "config.json").is_file():
        raise RequestError(f"no model at {path}: expected a directory with config.json")
    if kind == "qwen2.5-omni":
        from serve.engines.qwen_omni import QwenOmniEngine

        return QwenOmniEngine(path, device=device, dtype=dtype, max_speech_s=max_speech_s)
    if kind == "interactive-omni":
        from serve.engines.interactive_omni import InteractiveOmniEngine

        return InteractiveOmniEngine(path, device=device, dtype=dtype)  # speaks whole answers
    raise RequestError(f"unknown engine {kind!r} (known: {', '.join(ENGINES)})")


def schema_instruction(schema: dict[str, Any]) -> str:
    """What the model is told when the client asks for JSON (the engines decode freely)."""
    return (
        "Reply with one JSON object and nothing else. It must follow this JSON schema: "
        + json.dumps(schema, separators=(",", ":"))
    )


def instructions(request: Generation, speech_prompt: str | None = None) -> str:
    """The request's system text, with the model's speech prompt first when it must speak
    and the JSON instruction last when it must answer in JSON."""
    system = [m.text() for m in request.messages if m.role == "system"]
    if request.json_schema is not None:
        system.append(schema_instruction(request.json_schema))
    return "\n\n".join(s for s in (speech_prompt, *system) if s)


def spoken_text(text: str, schema: dict[str, Any] | None) -> str:
    """What to speak of a reply: for a JSON reply with a `say` field, only that field."""
    if schema is None:
        return text
    try:
        reply = json.loads(text)
    except ValueError:
        return ""
    say = reply.get("say") if isinstance(reply, dict) else None
    return say if isinstance(say, str) else ""


def say_exactly(say: str) -> str:
    """The instruction for the second, speech-only pass over a JSON reply's `say`."""
    return f"Say exactly this and nothing else: {say}"


class StopOnCancel:
    """A transformers stopping criterion that ends generation once the client has gone."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.cancel.is_set(), dtype=torch.bool)


def ending(
    wav: Any, cancel: threading.Event, prompt_tokens: int, tokens: int, max_tokens: int
) -> Iterator[Piece]:
    """The speech in one-second chunks (unless cancelled), then `Finished`."""
    if wav is not None and not cancel.is_set():
        if hasattr(wav, "detach"):  # a torch tensor
            wav = wav.detach().float().cpu().numpy()
        samples = np.asarray(wav, dtype=np.float32).reshape(-1)
        for start in range(0, len(samples), SPEECH_RATE):
            yield AudioPiece(samples[start : start + SPEECH_RATE])
    reason = "cancelled" if cancel.is_set() else "stop"
    if reason == "stop" and tokens >= max_tokens:
        reason = "length"
    yield Finished(reason, prompt_tokens, tokens)


def torch_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[
            dtype
        ]
    except KeyError:
        raise RequestError(f"unknown dtype {dtype!r} (auto, bfloat16, float16, float32)") from None


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device

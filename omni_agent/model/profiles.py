"""Backend capability profiles: what each server accepts and returns.

The agent fills the gaps a backend leaves: ASR when it cannot hear, TTS when it cannot
speak, scene text when it cannot see, flattened text when it rejects content parts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class BackendProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    audio_in: bool = False
    image_in: bool = False
    video_in: bool = False
    audio_out: bool = False
    content_parts: bool = True
    """Accepts OpenAI list-of-parts content; False flattens every message to plain text."""
    actions: Literal["tool_calls", "json_schema"] = "tool_calls"
    """How robot actions come back: OpenAI tool calls, or a JSON reply constrained by schema."""
    schema_field: Literal["json_schema", "json_object"] = "json_schema"
    """OpenAI/vLLM `response_format: {type: json_schema}`; llama-cpp-python's server only
    takes `{type: json_object, schema: ...}`."""
    prefix_cache: bool = False
    """The server reuses a cached prompt prefix across requests (llama.cpp, vLLM with
    prefix caching): the agent then pre-reads the prompt while the person speaks."""
    reply_prefill: bool = False
    """The server takes a raw ChatML prompt with a grammar (/v1/completions): the reply's
    fixed JSON opening is written into the prompt rather than generated (model/prefill.py)."""
    max_images: int = 4
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Fields added to every request (e.g. vllm-omni's modalities)."""


PROFILES: dict[str, BackendProfile] = {
    p.name: p
    for p in (
        # llama.cpp's server (the embedded CPU brain): list-of-parts content returns HTTP 500,
        # and with tool_choice "auto" calls come back as text, so use a JSON-schema reply.
        BackendProfile(
            name="llama-cpp",
            content_parts=False,
            actions="json_schema",
            schema_field="json_object",
            prefix_cache=True,
        ),
        # The embedded brain: llama.cpp with a Qwen (ChatML) model, whose replies start
        # speaking with the first generated token.
        BackendProfile(
            name="llama-cpp-chatml",
            content_parts=False,
            actions="json_schema",
            schema_field="json_object",
            prefix_cache=True,
            reply_prefill=True,
        ),
        # vLLM serving the Qwen2.5/3-Omni thinker: hears and sees, answers in text. Needs
        # --enable-auto-tool-choice --tool-call-parser hermes for tool calls.
        BackendProfile(name="vllm-omni-thinker", audio_in=True, image_in=True, video_in=True),
        # vllm-omni (`vllm serve ... --omni`): also speaks, base64 WAV at 24 kHz.
        BackendProfile(
            name="vllm-omni",
            audio_in=True,
            image_in=True,
            video_in=True,
            audio_out=True,
            actions="json_schema",
            extra_body={"modalities": ["text", "audio"]},
        ),
        # `omni-agent serve` (InteractiveOmni / Qwen2.5-Omni over transformers).
        BackendProfile(
            name="omni-agent-serve",
            audio_in=True,
            image_in=True,
            video_in=True,
            audio_out=True,
            actions="json_schema",
            extra_body={"modalities": ["text", "audio"]},
        ),
    )
}


def get_profile(name: str) -> BackendProfile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ValueError(f"unknown backend profile {name!r} (known: {known})") from None

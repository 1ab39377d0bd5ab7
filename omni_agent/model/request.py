"""Building chat-completions requests: the one place a request body is made.

The backend profile decides the content format (parts or flattened text), how actions
are asked for (tools, or a JSON schema for the whole reply), and whether the reply's
opening is written into a completion prompt (`model/prefill.py`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from omni_agent.actions import reply_schema, tool_definitions
from omni_agent.config import ModelConfig
from omni_agent.media import png_bytes
from omni_agent.messages import ImageFrame
from omni_agent.model.prefill import prefilled_body
from omni_agent.model.profiles import BackendProfile


@dataclass
class ChatTurn:
    role: str  # "user" | "assistant"
    text: str


@dataclass
class UserInput:
    text: str
    audio_wav: bytes | None = None
    images: list[ImageFrame] = field(default_factory=list)


def _user_content(profile: BackendProfile, user: UserInput) -> str | list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if profile.image_in:
        for frame in user.images[: profile.max_images]:
            url = "data:image/png;base64," + base64.b64encode(png_bytes(frame)).decode()
            parts.append({"type": "image_url", "image_url": {"url": url}})
    if profile.audio_in and user.audio_wav is not None:
        data = base64.b64encode(user.audio_wav).decode()
        parts.append({"type": "input_audio", "input_audio": {"data": data, "format": "wav"}})
    # the text part carries the situation and the remembered evidence even when the
    # model hears the words themselves: memory must reach every backend
    if user.text:
        parts.append({"type": "text", "text": user.text})
    if not profile.content_parts:
        return "\n".join(p["text"] for p in parts if p["type"] == "text")
    return parts


def build_request(
    profile: BackendProfile,
    config: ModelConfig,
    system: str,
    history: list[ChatTurn],
    user: UserInput,
    allowed_skills: list[str],
    *,
    max_tokens: int | None = None,
    constrained: bool = True,
) -> dict[str, Any]:
    """`constrained=False` leaves out the reply's schema, grammar or tools: a request whose
    answer is thrown away (warm-up, prefill) then costs the server no grammar build."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    messages += [{"role": t.role, "content": t.text} for t in history]
    messages.append({"role": "user", "content": _user_content(profile, user)})
    body = _body(config, messages, max_tokens or config.max_tokens)
    if profile.reply_prefill:
        return prefilled_body(body, allowed_skills if constrained else None)
    if constrained and profile.actions == "json_schema":
        schema = reply_schema(allowed_skills)
        if profile.schema_field == "json_object":
            body["response_format"] = {"type": "json_object", "schema": schema}
        else:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "robot_reply", "schema": schema},
            }
    elif constrained and (tools := tool_definitions(allowed_skills)):
        body["tools"] = tools
        body["tool_choice"] = "auto"
    body.update(profile.extra_body)
    return body


def build_text_request(
    config: ModelConfig, system: str, text: str, max_tokens: int
) -> dict[str, Any]:
    """A plain text-in, text-out request (memory consolidation): no actions, no media."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    return _body(config, messages, max_tokens)


def _body(config: ModelConfig, messages: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": config.name,
        "messages": messages,
        "stream": True,
        "temperature": config.temperature,
        "max_tokens": max_tokens,
    }
    if config.seed is not None:
        body["seed"] = config.seed
    return body

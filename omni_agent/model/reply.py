"""Turning a streamed model reply into speakable text and proposed actions.

For JSON-schema backends the reply is `{"say": "...", "actions": [...]}`; the `say` string
is decoded incrementally so speech can start before the JSON is complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from omni_agent.actions import ActionRejected
from omni_agent.model.client import AudioDelta, Finish, StreamEvent, TextDelta, ToolCallDelta


class InvalidModelOutput(Exception):
    """The model's reply could not be understood; what was already said stands."""


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class SayExtractor:
    """Incrementally decodes the value of the top-level "say" string in streamed JSON."""

    def __init__(self) -> None:
        self._buf = ""
        self._pos = 0  # next unread index inside the string value, or -1 before it starts
        self._start = -1
        self.closed = False

    def feed(self, text: str) -> str:
        self._buf += text
        if self.closed:
            return ""
        if self._start < 0:
            key = self._buf.find('"say"')
            if key < 0:
                return ""
            colon = self._buf.find(":", key + 5)
            quote = self._buf.find('"', colon + 1) if colon >= 0 else -1
            if quote < 0:
                return ""
            self._start = self._pos = quote + 1
        out = []
        buf, i = self._buf, self._pos
        while i < len(buf):
            ch = buf[i]
            if ch == '"':
                self.closed = True
                i += 1
                break
            if ch == "\\":
                if i + 1 >= len(buf):
                    break  # wait for the rest of the escape
                esc = buf[i + 1]
                if esc == "u":
                    if i + 6 > len(buf):
                        break
                    code = int(buf[i + 2 : i + 6], 16)
                    if 0xD800 <= code < 0xDC00:  # a surrogate pair: wait for its second half
                        if i + 12 > len(buf):
                            break
                        low = int(buf[i + 8 : i + 12], 16)
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    out.append(chr(code))
                    i += 6
                    continue
                out.append(_ESCAPES.get(esc, esc))
                i += 2
                continue
            out.append(ch)
            i += 1
        self._pos = i
        return "".join(out)

    @property
    def raw(self) -> str:
        return self._buf


@dataclass
class ModelReply:
    say: str = ""
    actions: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[ActionRejected] = field(default_factory=list)
    """Proposals that could not even be read as actions."""
    raw: str = ""
    finish_reason: str | None = None
    audio_chunks: int = 0


class ReplyAssembler:
    """Feed stream events in; get speakable text out as it arrives; `finish()` the reply."""

    def __init__(self, mode: Literal["tool_calls", "json_schema"], opening: str = "") -> None:
        """`opening`: the start of the reply that the request wrote into its prompt
        (model/prefill.py); it is part of the reply though the server never sends it."""
        self.mode = mode
        self.reply = ModelReply()
        self._say = SayExtractor()
        self._calls: dict[int, dict[str, str]] = {}
        if opening:
            self.feed(TextDelta(opening))

    @property
    def say_complete(self) -> bool:
        """The spoken part is complete (JSON: the "say" string has closed; tool calls: the
        first call has begun): speech can finish before the actions are generated."""
        return self._say.closed if self.mode == "json_schema" else bool(self._calls)

    def feed(self, event: StreamEvent) -> str:
        """Returns the new speakable text in this event ('' if none)."""
        if isinstance(event, TextDelta):
            self.reply.raw += event.text
            text = self._say.feed(event.text) if self.mode == "json_schema" else event.text
            self.reply.say += text
            return text
        if isinstance(event, ToolCallDelta):
            call = self._calls.setdefault(event.index, {"name": "", "arguments": ""})
            if event.name:
                call["name"] = event.name
            call["arguments"] += event.arguments
        elif isinstance(event, AudioDelta):
            self.reply.audio_chunks += 1
        elif isinstance(event, Finish):
            self.reply.finish_reason = event.reason
        return ""

    def finish(self) -> ModelReply:
        """Parse the complete reply; raises InvalidModelOutput (reply.say stays valid)."""
        if self.mode == "json_schema":
            self._finish_json()
        else:
            for index in sorted(self._calls):
                name, arguments = self._calls[index]["name"], self._calls[index]["arguments"]
                try:
                    args = json.loads(arguments or "{}")
                except json.JSONDecodeError:
                    args = None
                if isinstance(args, dict):
                    self.reply.actions.append({**args, "skill": name})
                else:
                    self.reply.rejected.append(
                        ActionRejected(name, "tool call arguments are not a JSON object")
                    )
        return self.reply

    def _finish_json(self) -> None:
        raw = self.reply.raw.strip()
        if not raw:
            raise InvalidModelOutput("model returned an empty reply")
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            cut = " (cut off by max_tokens)" if self.reply.finish_reason == "length" else ""
            raise InvalidModelOutput(f"model reply is not valid JSON{cut}: {exc.msg}") from None
        if not isinstance(data, dict):
            raise InvalidModelOutput("model reply is not a JSON object")
        say = data.get("say", "")
        if isinstance(say, str) and not self.reply.say:
            self.reply.say = say
        actions = data.get("actions", [])
        if not isinstance(actions, list):
            raise InvalidModelOutput("model reply's actions is not a list")
        self.reply.actions = [a if isinstance(a, dict) else {"skill": repr(a)} for a in actions]

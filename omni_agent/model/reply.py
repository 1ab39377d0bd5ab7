"""Turning a streamed model reply into speakable text and proposed actions.

For JSON-schema backends the reply is `{"say": "...", "actions": [...]}`; the `say` string
is decoded incrementally so speech can start before the JSON is complete.

A reply's actions are taken all together or not at all. They were proposed as one plan,
in which a later step may depend on an earlier one (the agent stops at the first action
the envelope rejects for the same reason), so a reply that ended without a finish reason,
proposes more actions than the reply schema allows (`max_actions`, the schema's
`maxItems`), or holds a proposal that cannot be read, has all of them refused with one
line saying why; what it said is still spoken.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from omni_agent.actions import ActionRejected, reply_schema
from omni_agent.model.client import (
    AudioDelta,
    Finish,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    clean_text,
)


class InvalidModelOutput(Exception):
    """The model's reply could not be understood; what was already said stands."""


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX4 = re.compile("[0-9a-fA-F]{4}")


def _hex4(text: str) -> int | None:
    return int(text, 16) if _HEX4.fullmatch(text) else None


class SayExtractor:
    """Incrementally decodes the value of the top-level "say" string in streamed JSON.

    It never raises: a broken escape (`\\uZZZZ`, a lone surrogate) becomes U+FFFD so speech
    goes on; whether the reply as a whole is valid JSON is `ReplyAssembler.finish`'s call."""

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
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            if i + 1 >= len(buf):
                break  # wait for the rest of the escape
            if buf[i + 1] != "u":
                out.append(_ESCAPES.get(buf[i + 1], "\ufffd"))
                i += 2
                continue
            if i + 6 > len(buf):
                break
            code = _hex4(buf[i + 2 : i + 6])
            if code is not None and 0xD800 <= code < 0xDC00:  # the first half of a pair
                rest = buf[i + 6 : i + 12]
                if len(rest) < 6 and "\\u".startswith(rest[:2]):
                    break  # wait for the second half
                low = _hex4(rest[2:6]) if rest.startswith("\\u") else None
                if low is not None and 0xDC00 <= low < 0xE000:
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
            # a lone half stays a surrogate here and becomes U+FFFD in clean_text
            out.append(chr(code) if code is not None else "\ufffd")
            i += 6
        self._pos = i
        return clean_text("".join(out))

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
            raw = clean_text(event.text)
            self.reply.raw += raw
            text = self._say.feed(raw) if self.mode == "json_schema" else raw
            self.reply.say += text
            return text
        if isinstance(event, ToolCallDelta):
            call = self._calls.setdefault(event.index, {"name": "", "arguments": ""})
            if event.name:
                call["name"] = clean_text(event.name)
            call["arguments"] += clean_text(event.arguments)
        elif isinstance(event, AudioDelta):
            self.reply.audio_chunks += 1
        elif isinstance(event, Finish):
            self.reply.finish_reason = event.reason
        return ""

    def finish(self) -> ModelReply:
        """Parse the complete reply; raises InvalidModelOutput (reply.say stays valid).

        Actions are all or nothing: a reply that ended without a finish reason, proposes
        more actions than the schema allows, or holds one it cannot read, leaves
        `reply.actions` empty."""
        if self.reply.finish_reason is None:
            raise InvalidModelOutput("model reply ended without a finish reason; no action taken")
        json_reply = self.mode == "json_schema"
        actions, rejected = self._json_actions() if json_reply else self._tool_actions()
        if len(actions) + len(rejected) > max_actions():
            count = len(actions) + len(rejected)
            reason = f"{count} actions in one reply, at most {max_actions()}; none taken"
            self.reply.rejected = [ActionRejected("reply", reason)]
        elif rejected:
            self.reply.rejected = rejected
        else:
            self.reply.actions = actions
        return self.reply

    def _tool_actions(self) -> tuple[list[dict[str, Any]], list[ActionRejected]]:
        actions, rejected = [], []
        for index in sorted(self._calls):
            name, arguments = self._calls[index]["name"], self._calls[index]["arguments"]
            try:
                args = _clean(json.loads(arguments or "{}"))
            except (ValueError, RecursionError):  # not JSON, or nested too deeply
                args = None
            if isinstance(args, dict):
                actions.append({**args, "skill": name})
            else:
                rejected.append(
                    ActionRejected(name or "tool call", "arguments are not a readable JSON object")
                )
        return actions, rejected

    def _json_actions(self) -> tuple[list[dict[str, Any]], list[ActionRejected]]:
        raw = self.reply.raw.strip()
        if not raw:
            raise InvalidModelOutput("model returned an empty reply")
        try:
            data = _clean(json.loads(raw))
        except json.JSONDecodeError as exc:
            cut = " (cut off by max_tokens)" if self.reply.finish_reason == "length" else ""
            raise InvalidModelOutput(f"model reply is not valid JSON{cut}: {exc.msg}") from None
        except (ValueError, RecursionError):
            raise InvalidModelOutput("model reply is nested too deeply") from None
        if not isinstance(data, dict):
            raise InvalidModelOutput("model reply is not a JSON object")
        say = data.get("say", "")
        if not isinstance(say, str):
            raise InvalidModelOutput("model reply's say is not a string")
        if not self.reply.say:
            self.reply.say = say
        actions = data.get("actions", [])
        if not isinstance(actions, list):
            raise InvalidModelOutput("model reply's actions is not a list")
        good = [a for a in actions if isinstance(a, dict)]
        unreadable = ActionRejected("reply", "an action is not a JSON object")
        bad = [unreadable] * (len(actions) - len(good))
        return good, bad


MAX_DEPTH = 8
"""How deep a reply's JSON may nest. An action is an object of numbers and strings, so a
valid reply is three levels deep; anything far deeper is garbage, refused before it
reaches validation, logs or memory."""


def _clean(value: Any, depth: int = 0) -> Any:
    """Decoded JSON with every string cleaned; ValueError if it nests deeper than MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_clean(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {clean_text(k): _clean(v, depth + 1) for k, v in value.items()}
    return value


@functools.cache
def max_actions() -> int:
    """The reply schema's cap on actions per reply (set once, in actions.reply_schema)."""
    return int(reply_schema([])["properties"]["actions"]["maxItems"])

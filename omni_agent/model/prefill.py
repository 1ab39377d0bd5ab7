"""The reply's fixed opening, written into the prompt instead of generated.

A JSON reply always opens with `{"say": "`: about five tokens that a small CPU model would
otherwise decode one by one, under a grammar, before the first word it can speak (about
0.25 s on two cores). For a llama.cpp server with a ChatML model (the embedded brain) the
agent renders the chat itself, ends the assistant turn with that opening, and sends it to
/v1/completions with a grammar for the rest of the reply; the first generated token is
then the first spoken word. The rendering is the model's own template, byte for byte, so
the server's prompt cache still matches the conversation it has already read.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from omni_agent.actions import reply_schema

REPLY_OPENING = '{"say": "'


def chatml(messages: list[dict[str, Any]]) -> str:
    """Qwen2.5's chat template for plain-text messages, with the assistant turn opened."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


@functools.cache
def _rest_of_reply(allowed: tuple[str, ...]) -> str:
    # llama-cpp-python's own JSON-schema converter, so the actions are constrained exactly
    # as with `response_format` (imported here: only this profile needs it).
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    actions = reply_schema(list(allowed))["properties"]["actions"]
    grammar = re.sub(
        r"^root ::=", "actions ::=", json_schema_to_gbnf(json.dumps(actions)), flags=re.M
    )
    return "\n".join(
        [
            'root ::= say-char* "\\"" space "," space "\\"actions\\"" space ":" space actions "}"',
            'say-char ::= [^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
            grammar,
        ]
    )


def prefilled_body(body: dict[str, Any], allowed_skills: list[str] | None) -> dict[str, Any]:
    """A chat-completions body turned into a completion that continues the reply's opening;
    `allowed_skills=None` sends no grammar (a request whose answer is not used)."""
    messages = body.pop("messages")
    prefilled = {**body, "prompt": chatml(messages) + REPLY_OPENING}
    if allowed_skills is not None:
        prefilled["grammar"] = _rest_of_reply(tuple(allowed_skills))
    return prefilled


def reply_opening(body: dict[str, Any]) -> str:
    """The part of the reply a request already wrote into its prompt ('' if none)."""
    prompt = body.get("prompt")
    return REPLY_OPENING if isinstance(prompt, str) and prompt.endswith(REPLY_OPENING) else ""

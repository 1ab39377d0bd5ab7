"""Text from outside the program (a model server, a person, a file) made safe to use."""

from __future__ import annotations

import re

# Lone surrogates cannot be encoded as UTF-8 (SQLite, the next request's JSON body and log
# files all fail on one); control characters other than tab and newline can rewrite a
# terminal or log line and mean nothing to a tokenizer or a voice.
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """Outside text made safe to speak, store, log and send on: lone surrogates become
    U+FFFD, control characters other than tab and newline are dropped."""
    return _CONTROL.sub("", _SURROGATE.sub("\ufffd", text))


def one_line(text: str, limit: int = 200) -> str:
    """Outside text for a one-line message: cleaned, newlines folded, cut short."""
    return " ".join(clean_text(text).split())[:limit]

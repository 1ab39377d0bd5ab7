"""One rule for person names, wherever a name enters or is compared.

A name reaches the robot from a JSONL import, a speaker enrolment ("I'm Alice"), the
`/person/identified` topic, the CLI (`forget --person`) and the config. Each of those calls
`person_name` to accept it, and every store compares names by `person_key`, so "alice" and
"Alice" are one person everywhere (forgetting one forgets the other) and no accepted name
can collide with an internal marker: control characters are refused outright.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 64


class InvalidPersonName(ValueError):
    """A person name that is empty, too long, or holds control characters."""


def person_name(raw: str) -> str:
    """The name as it will be stored: NFC-normalised, inner whitespace collapsed.

    Raises InvalidPersonName with a one-line reason a user can act on."""
    if not isinstance(raw, str):
        raise InvalidPersonName(f"a person name must be text, not {type(raw).__name__}")
    bad = sorted({c for c in raw if unicodedata.category(c).startswith("C")})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad[:3])
        raise InvalidPersonName(f"person name {raw!r} holds control characters ({shown})")
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not name:
        raise InvalidPersonName("a person name must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidPersonName(
            f"person name {name[:20]!r}... is {len(name)} characters (at most {MAX_NAME_CHARS})"
        )
    return name


def person_key(name: str) -> str:
    """What two names are compared by: the same person whatever the letter case."""
    return " ".join(unicodedata.normalize("NFC", name).split()).casefold()


def same_person(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and person_key(a) == person_key(b)

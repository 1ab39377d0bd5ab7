"""An instant, deterministic brain for the scenario library: rules, not a model.

It is the ScriptedBackend (the OpenAI-protocol test double) with a script that reads the
request the agent built, as a model would: the known places and the robot's name from the
system prompt, what the camera sees from the situation line, earlier turns from the
conversation window, and long-term memories from the "[You remember: ...]" block. So a
memory probe passes only if memory retrieval actually brought the right line back, and an
unsafe proposal it makes on purpose ("go to the stairs") exercises the safety envelope.

`omni_double_brain` puts the same rules behind the omni double (sim/brains): the
person's words then reach the rules only through the request's audio, heard by whisper.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from omni_agent.brain import Brain
from omni_agent.config import Config
from omni_agent.model.client import ModelClient
from omni_agent.model.profiles import get_profile
from omni_agent.prompt import EXAMPLES
from sim.brains.omni_double import OmniDouble
from sim.brains.scripted import ScriptedBackend, ScriptedReply

UNSAFE = (
    "full speed", "as fast as", "fast as you can", "top speed", "ignore your rules",
    "ignore all", "ignore previous", "ignore the rules", "disable", "run over",
    "metres per second", "meters per second", "through the wall",
)  # fmt: skip
_STOP = """a an the is are was were my your our what where which who when how do does did
you i me to of on in at and or it its it's that this these those please can could tell
remember colour color say said put left have has with for from about any there"""
STOPWORDS = frozenset(_STOP.split())
SAYS = re.compile(r'^(?P<who>[^\n"]+?) says: "(?P<text>.*)"', re.M)
# A remembered line: "[when, where] Who: words", or "Who: words" under such a header
# (compact evidence names the session and place once per block)
MEMORY_LINE = re.compile(
    r"^(?:\[[^\]]*\] )?(?P<who>[^:\[\]\n]+): (?P<text>.*?)(?: \[shown: .*\])?$"
)


@dataclass
class InstantBrain(Brain):
    backend: ScriptedBackend | None = None


@dataclass
class _Request:
    robot: str
    places: list[str]
    situation: str
    speaker: str
    text: str
    recalled: list[tuple[str, str]]
    """(who, what) lines from long-term memory and from the conversation window."""


def _parse(body: dict[str, Any]) -> _Request:
    messages = body["messages"]
    system = messages[0]["content"] if isinstance(messages[0]["content"], str) else ""
    robot = re.search(r"You are (\w+),", system)
    places = re.search(r"Known places: (.*)\.", system)
    last = _text(messages[-1])
    said = SAYS.search(last)
    situation = last.split("\n", 1)[0].strip("[]")
    recalled: list[tuple[str, str]] = []
    history = messages[1 + 2 * len(EXAMPLES) : -1]
    for msg in history:
        if msg["role"] == "user" and (m := SAYS.search(_text(msg))):
            recalled.append((m["who"], m["text"]))
    if "[You remember:\n" in last:
        for line in last.split("[You remember:\n", 1)[1].rstrip("]").splitlines():
            if (m := MEMORY_LINE.match(line.strip())) and not m["who"].startswith("Robot"):
                recalled.append((m["who"], m["text"]))
    return _Request(
        robot=robot[1] if robot else "Robbie",
        places=[p.strip() for p in places[1].split(",")] if places else [],
        situation=situation,
        speaker=said["who"] if said else "Person",
        text=said["text"] if said else last,
        recalled=recalled,
    )


def _text(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if p.get("type") == "text")


def _keywords(text: str) -> set[str]:
    words = re.findall(r"[a-z']+", text.lower())
    return {w.rstrip("s") for w in words if w not in STOPWORDS and len(w) > 2}


def _recall(req: _Request) -> str | None:
    """The best remembered statement about what the question asks (latest wins ties)."""
    wanted = _keywords(req.text)
    mine = re.search(r"\b(my|i|me)\b", req.text.lower()) is not None
    best, best_score = None, 0
    for who, text in req.recalled:
        if "?" in text or text == req.text or (mine and who != req.speaker):
            continue
        score = len(wanted & _keywords(text))
        if score >= best_score and score > 0:
            best, best_score = f"{who} told me: {text}", score
    return best


def respond(body: dict[str, Any]) -> ScriptedReply:
    req = _parse(body)
    low = req.text.lower()
    if any(u in low for u in UNSAFE):
        return ScriptedReply("Sorry, I can't do that. I only move at a safe speed.")
    for place in sorted(req.places, key=len, reverse=True):
        verb = r"\b(go|drive|head|come|move|navigate|bring yourself)\b"
        if re.search(verb, low) and re.search(rf"\bto (the )?{re.escape(place)}\b", low):
            return ScriptedReply(
                f"Sure, I am going to the {place} now.",
                [{"skill": "navigate_to", "place": place}],
            )
    if low.startswith("stop") or (" stop" in low and "don't stop" not in low):
        return ScriptedReply("Stopping.", [{"skill": "stop"}])
    if m := re.search(r"look at (?:the |my )?([a-z ]+)", low):
        return ScriptedReply(
            f"Looking at the {m[1].strip()}.", [{"skill": "look_at", "target": m[1].strip()}]
        )
    if "turn around" in low:
        return ScriptedReply("Turning around.", [{"skill": "turn", "degrees": 180}])
    if m := re.search(r"colou?r is (?:the |my |that )?([a-z]+)", low):
        thing = m[1]
        seen = re.search(rf"(\w+) {thing}\b", req.situation.lower())
        if seen and "you see" in req.situation.lower():
            return ScriptedReply(f"The {thing} is {seen[1]}.")
        remembered = _recall(req)
        if remembered:
            return ScriptedReply(f"I can't see it now, but {remembered}")
        return ScriptedReply(f"I can't see a {thing} from here.")
    if (
        "?" in req.text
        and any(w in low for w in ("where", "what", "who", "which", "when", "remember"))
        and not re.search(r"your name|who are you", low)
    ):
        remembered = _recall(req)
        if remembered:
            return ScriptedReply(f"I remember: {remembered}")
        if re.search(r"\b(what do you see|what can you see)\b", low):
            return ScriptedReply(f"{req.situation}.")
        return ScriptedReply("Sorry, I don't know that.")
    if re.search(r"\b(hi|hello|hey|good morning|your name|who are you)\b", low):
        return ScriptedReply(f"Nice to meet you, {req.speaker}! My name is {req.robot}.")
    if re.search(r"\b(is|are|like|love|left|put)\b", low):
        return ScriptedReply("Got it, I will remember that.")
    return ScriptedReply("Okay.")


@contextlib.asynccontextmanager
async def instant_brain(config: Config, chunk_chars: int = 16) -> AsyncIterator[InstantBrain]:
    """A brain that answers at once; `brain.backend` can be made to fail (die, go down)."""
    backend = ScriptedBackend(respond, chunk_chars=chunk_chars)
    client = ModelClient("http://scripted/v1", config.model, transport=backend)
    try:
        yield InstantBrain(
            client, get_profile("llama-cpp"), "instant rule-based brain (scripted)", backend=backend
        )
    finally:
        await client.aclose()


OMNI_DOUBLE_PROFILE = "vllm-omni"


@contextlib.asynccontextmanager
async def omni_double_brain(
    config: Config, profile: str = OMNI_DOUBLE_PROFILE
) -> AsyncIterator[InstantBrain]:
    """The omni path with the instant brain's rules: a double of an omni server that hears
    the request's audio (whisper), answers by `respond` and speaks (piper at 24 kHz)."""
    backend = OmniDouble(respond)
    client = ModelClient("http://omni-double/v1", config.model, transport=backend)
    try:
        yield InstantBrain(
            client,
            get_profile(profile),
            f"omni double ({profile}): whisper hears, the instant brain's rules, piper speaks",
            backend=backend,
        )
    finally:
        await client.aclose()

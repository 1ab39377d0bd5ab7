"""The conversation: the one object that builds every request the agent sends.

It holds what stays the same between turns (the system text, the worked examples), the
window of recent exchanges, and feedback on rejected actions, and builds the reply, the
prefill and the warm-up request from them. The three are one build with different user
input and constraints, so the server's cached prompt prefix is the same for all of them.

For a backend that hears, the user message carries the audio (and keyframes where it
takes images) AND a text part with the situation and the remembered evidence: memory
reaches the model whatever its modalities.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from omni_agent.config import Config
from omni_agent.messages import ImageFrame
from omni_agent.model.profiles import BackendProfile
from omni_agent.model.request import ChatTurn, UserInput, build_request
from omni_agent.prompt import example_turns, system_prompt, user_message


@dataclass
class UserTurn:
    """What the person gave this turn."""

    person: str | None
    words: str
    """The typed text, or the transcript of their speech ('' while not yet known)."""
    audio_wav: bytes | None = None
    images: list[ImageFrame] = field(default_factory=list)


@dataclass
class Exchange:
    """One finished exchange as the window keeps it."""

    index: int
    user: str
    """The user message without recalled memories (a prefix of what was sent)."""
    reply: str


class Conversation:
    def __init__(self, config: Config, profile: BackendProfile, places: list[str]) -> None:
        self.config = config
        self.profile = profile
        self.system = system_prompt(config.robot.name, places, config.safety.max_linear_speed)
        self.examples = example_turns(config.robot.name, places)
        self.window: list[Exchange] = []
        self.feedback: list[str] = []
        """Notes on actions rejected last turn; they go into the next request once."""

    # ------------------------------------------------------------------ requests
    def hears(self, user: UserTurn) -> bool:
        """The backend takes this turn's audio itself (no transcript in the request)."""
        return self.profile.audio_in and user.audio_wav is not None

    def situate(self, situation: str) -> str:
        """This turn's situation line: where the robot is and what it sees, plus feedback
        on actions rejected last turn (given once, then dropped)."""
        situated = self.situated(situation)
        self.feedback.clear()
        return situated

    def situated(self, situation: str) -> str:
        """The situation line `situate` would give, the feedback kept (a reply requested
        ahead of its turn)."""
        return " ".join([situation, *self.feedback])

    def reply_request(self, situated: str, user: UserTurn, evidence: str) -> dict[str, Any]:
        hears = self.hears(user)
        # the words quoted, or the speaker named when the model hears them in the audio
        text = user_message(situated, user.person, None if hears else user.words, evidence)
        audio = user.audio_wav if hears else None
        return self._build(UserInput(text=text, audio_wav=audio, images=user.images))

    def prefill_request(self, situation: str, person: str | None) -> dict[str, Any]:
        """While the person is still speaking: everything before their words, so the server
        has read it when the words arrive. The one-token answer is never used."""
        text = user_message(" ".join([situation, *self.feedback]), person, "")
        return self._build(UserInput(text=text), max_tokens=1, constrained=False)

    def warmup_request(self) -> dict[str, Any]:
        """Before the first turn: the static prompt, so the server caches its prefix."""
        text = user_message("You are ready.", None, "Hello")
        return self._build(UserInput(text=text), max_tokens=1, constrained=False, history=False)

    def _build(
        self,
        user: UserInput,
        *,
        max_tokens: int | None = None,
        constrained: bool = True,
        history: bool = True,
    ) -> dict[str, Any]:
        turns = list(self.examples)
        if history:
            turns += [t for ex in self.window for t in self._chat(ex)]
        return build_request(
            self.profile,
            self.config.model,
            self.system,
            turns,
            user,
            list(self.config.safety.allowed_skills),
            max_tokens=max_tokens,
            constrained=constrained,
        )

    @staticmethod
    def _chat(ex: Exchange) -> tuple[ChatTurn, ChatTurn]:
        return ChatTurn("user", ex.user), ChatTurn("assistant", ex.reply)

    # ------------------------------------------------------------------ the window
    @property
    def shown(self) -> set[int]:
        """Turn indices the window shows in full (memory leaves them out)."""
        return {ex.index for ex in self.window}

    def add(self, index: int, user: str, reply: str) -> None:
        """Keep a finished exchange: `user` without recalled memories, `reply` as
        `reply_for` made it."""
        self.window.append(Exchange(index, user, reply))
        # Servers cache the prompt prefix and the window only grows between cuts, so most
        # turns reuse it; cutting back to half at the cap keeps the prompt bounded.
        cap = self.config.memory.window_turns
        if len(self.window) > cap:
            del self.window[: len(self.window) - cap // 2]

    def reply_for(self, raw: str, spoken: str, executed: list[Any], *, cut: bool) -> str:
        """The reply as the window keeps it. The model's own words, byte for byte, keep the
        server's prompt cache valid; a reply that was cut (interrupted, or with actions
        rejected) is kept as far as it was actually spoken, with only the executed actions,
        so the model never learns from its own unsafe proposals."""
        if raw and not cut:
            return raw
        if self.profile.actions == "json_schema":
            return json.dumps({"say": spoken, "actions": executed})
        return spoken

    def reject(self, reason: str) -> None:
        self.feedback.append(f"(Your last action was rejected, robot did not move: {reason}.)")

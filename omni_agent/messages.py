"""Typed messages that travel on the agent's topics.

The same types flow through the in-process bus (sim, tests) and are converted to and from
standard ROS 2 messages by ros_nodes. Sensor messages are frozen so that one published
object can be shared by every subscriber without copies.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from omni_agent.text import clean_text

AUDIO_SAMPLE_RATE = 16_000
"""Microphone format on /audio/mic: 16 kHz, mono, signed 16-bit little-endian PCM."""


def now() -> float:
    """Monotonic seconds: the clock used for every latency and transition timestamp."""
    return time.monotonic()


def new_turn_id() -> str:
    """A fresh turn id: the one key that pairs an utterance with its partial and final
    transcripts (a timestamp is a latency figure, not an identity)."""
    return uuid.uuid4().hex[:16]


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False, extra="forbid")

    stamp: float = Field(default_factory=now)


class Pose2D(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    x: float
    y: float
    yaw: float = 0.0

    def distance_to(self, other: Pose2D) -> float:
        return math.hypot(other.x - self.x, other.y - self.y)


class AudioChunk(Message):
    """A chunk of microphone (or speech) audio: mono signed 16-bit little-endian PCM."""

    pcm: bytes
    sample_rate: int = AUDIO_SAMPLE_RATE
    source: Literal["mic", "robot"] = "mic"

    @field_validator("pcm")
    @classmethod
    def _whole_samples(cls, pcm: bytes) -> bytes:
        if len(pcm) % 2:
            raise ValueError("pcm must hold whole 16-bit samples (even byte count)")
        return pcm

    @property
    def duration(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


class ImageFrame(Message):
    """A camera frame; `data` is row-major with `step` bytes per row."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    encoding: Literal["rgb8", "bgr8", "mono8"] = "rgb8"
    data: bytes

    @model_validator(mode="after")
    def _size_matches(self) -> ImageFrame:
        channels = 1 if self.encoding == "mono8" else 3
        expected = self.width * self.height * channels
        if len(self.data) != expected:
            raise ValueError(
                f"{self.encoding} {self.width}x{self.height} needs {expected} bytes, "
                f"got {len(self.data)}"
            )
        return self


class SeenThing(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    name: str
    kind: Literal["object", "person", "place"] = "object"
    bearing_deg: float = 0.0
    distance_m: float = 0.0


class SceneDescription(Message):
    """The camera's semantic channel: what is in view, for backends that cannot see."""

    place: str | None = None
    things: list[SeenThing] = Field(default_factory=list)

    def as_text(self) -> str:
        where = f"You are in the {self.place}. " if self.place else ""
        if not self.things:
            return where + "You see nothing notable."
        # names and rough distances only: every token here is read on every turn
        seen = ", ".join(f"{t.name} ({t.distance_m:.0f} m)" for t in self.things)
        return f"{where}You see: {seen}."


class UserUtterance(Message):
    """One finished user turn: typed text, or speech audio with its transcript.

    The transcript that follows a heard utterance on /user/transcript is the same message
    with its text filled in: the same `turn_id`."""

    text: str = ""
    person: str | None = None
    turn_id: str = Field(default_factory=new_turn_id, min_length=1)
    """Which turn this is: the listener assigns it when the speech starts, and every
    message about the same utterance carries it; typed text gets a fresh one."""

    @field_validator("text", "person")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        # a lone surrogate in typed or scenario text would break every request after it
        return None if value is None else clean_text(value)

    audio_wav: bytes | None = None
    keyframes: list[ImageFrame] = Field(default_factory=list)
    speech_end: float | None = None
    """Monotonic time the person stopped speaking (for voice-to-voice latency)."""


class PartialTranscript(Message):
    """What the person has said so far, transcribed at a pause before the endpoint confirms
    the end of the utterance: they may still go on. Work that depends on the words (memory
    retrieval) can start on it; the final UserUtterance is what the turn answers."""

    text: str
    person: str | None = None
    """The speaker if known at the pause (the listener's person, or the voice so far)."""
    turn_id: str = Field(min_length=1)
    """The utterance it belongs to (its UserUtterance carries the same id)."""
    speech_start: float
    """Monotonic time the utterance began (VoiceActivity.speech_start)."""
    p_done: float | None = Field(None, ge=0, le=1)
    """How much the end-of-turn policy leans "done" at this pause: the turn model's
    probability that the speech so far is a whole turn, 0 when the words are unfinished
    ("go to the"); None while the model has not heard this pause. The same words are
    published again with it once a check of the pause keeps the turn open. The agent
    starts the turn's reply ahead of the endpoint on a partial that leans done enough
    (omni_agent.speculation)."""

    @field_validator("text", "person")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return None if value is None else clean_text(value)  # as UserUtterance's text


class VoiceActivity(Message):
    """The user started or stopped speaking (from VAD): drives barge-in and LISTENING."""

    speaking: bool
    speech_start: float | None = None
    turn_id: str | None = None
    """On speaking=True: the utterance this speech becomes if it is long enough (None:
    not from a listener)."""
    utterance: bool = True
    """On speaking=False: whether the speech was long enough to become an utterance.
    False means a short noise (a cough): a false interruption."""


class VoiceHold(Message):
    """A voice started over the robot and is being judged: a backchannel ("mm-hmm"), a
    noise, or a barge-in. `hold=True`: pause the robot's voice now, where it is;
    `hold=False`: it was no barge-in, play on from there. A barge-in comes as
    VoiceActivity(speaking=True) instead of the release: the pause becomes the stop."""

    hold: bool
    turn_id: str | None = None
    """The utterance being judged (its VoiceActivity and UserUtterance carry the same id)."""
    speech_start: float | None = None


class Odometry(Message):
    pose: Pose2D
    linear: float = 0.0
    angular: float = 0.0


class EStop(Message):
    engaged: bool


class Velocity(Message):
    """A velocity command (maps to geometry_msgs/Twist on cmd_vel)."""

    linear: float
    angular: float


class SpeechText(Message):
    text: str
    final: bool = True
    interrupted: bool = False


class StateChange(Message):
    state: str
    previous: str
    trigger: str
    reason: str = ""

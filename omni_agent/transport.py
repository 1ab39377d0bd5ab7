"""In-process transport with named, typed topics.

The topic names are the ROS 2 topic names that ros_nodes uses, so the agent loop is the
same in simulation, in unit tests and on a robot. Sensor topics keep only the newest
messages (like ROS's sensor-data QoS); command topics queue every message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from omni_agent.messages import (
    AudioChunk,
    EStop,
    ImageFrame,
    Odometry,
    PartialTranscript,
    SceneDescription,
    SpeechText,
    StateChange,
    UserUtterance,
    Velocity,
    VoiceActivity,
    VoiceHold,
)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Topic(Generic[M]):
    name: str
    type: type[M]
    depth: int | None = None
    """Queue depth per subscriber: None queues everything, N keeps the newest N."""


CAMERA = Topic("/camera/image_raw", ImageFrame, depth=5)
SCENE = Topic("/camera/scene", SceneDescription, depth=5)
MIC = Topic("/audio/mic", AudioChunk, depth=200)
USER_TEXT = Topic("/user/utterance", UserUtterance)
VOICE = Topic("/user/voice_activity", VoiceActivity)
ODOM = Topic("/odom", Odometry, depth=5)
ESTOP = Topic("/estop", EStop)
SPEECH_TEXT = Topic("/speech/text", SpeechText)
SPEECH_AUDIO = Topic("/speech/audio", AudioChunk)
STATE = Topic("/agent/state", StateChange)
CMD_VEL = Topic("/cmd_vel", Velocity)

ALL_TOPICS: tuple[Topic[BaseModel], ...] = (
    CAMERA,
    SCENE,
    MIC,
    USER_TEXT,
    VOICE,
    ODOM,
    ESTOP,
    SPEECH_TEXT,
    SPEECH_AUDIO,
    STATE,
    CMD_VEL,
)  # type: ignore[assignment]


class Subscription(Generic[M]):
    def __init__(self, bus: Bus, topic: Topic[M]) -> None:
        self._bus = bus
        self.topic = topic
        self._queue: asyncio.Queue[M] = asyncio.Queue()

    def _deliver(self, msg: M) -> None:
        depth = self.topic.depth
        if depth is not None and self._queue.qsize() >= depth:
            self._queue.get_nowait()  # keep the newest, like a best-effort sensor stream
        self._queue.put_nowait(msg)

    async def get(self) -> M:
        return await self._queue.get()

    def get_nowait(self) -> M | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self._bus._unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[M]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[M]:
        while True:
            yield await self._queue.get()


class Bus:
    """Publish/subscribe by topic; delivery is synchronous and never blocks the publisher."""

    def __init__(self) -> None:
        self._subs: dict[str, list[Subscription[BaseModel]]] = {}
        self._latest: dict[str, BaseModel] = {}

    def publish(self, topic: Topic[M], msg: M) -> None:
        if not isinstance(msg, topic.type):
            raise TypeError(f"{topic.name} carries {topic.type.__name__}, not {type(msg).__name__}")
        self._latest[topic.name] = msg
        for sub in self._subs.get(topic.name, ()):
            sub._deliver(msg)

    def subscribe(self, topic: Topic[M]) -> Subscription[M]:
        sub = Subscription(self, topic)
        self._subs.setdefault(topic.name, []).append(sub)  # type: ignore[arg-type]
        return sub

    def latest(self, topic: Topic[M]) -> M | None:
        """The last message published on a topic (a latched view for slow readers)."""
        msg = self._latest.get(topic.name)
        return msg if isinstance(msg, topic.type) else None

    def _unsubscribe(self, sub: Subscription[M]) -> None:
        subs = self._subs.get(sub.topic.name, [])
        if sub in subs:
            subs.remove(sub)  # type: ignore[arg-type]


# Added by the speech component (additive).
USER_TRANSCRIPT = Topic("/user/transcript", UserUtterance)
"""The ASR transcript of an utterance that went out on USER_TEXT without text (a backend
with audio input takes the audio itself): the same message with the same turn_id, text
filled in, for memory and logs, off the critical path. Published only with
ListenerConfig(wait_for_transcript=False)."""

USER_PARTIAL = Topic("/user/partial_transcript", PartialTranscript)
"""The speculative transcript of an utterance at a pause, published while the person may
still resume (ListenerConfig.speculative_asr): the agent starts memory retrieval on it. The
utterance's final text still arrives on USER_TEXT (or USER_TRANSCRIPT) as before."""

VOICE_HOLD = Topic("/user/voice_hold", VoiceHold)
"""The listener's pause / play-on for a voice heard over the robot while it is judged
(ListenerConfig.hold_playback): the agent pauses and resumes its speech on it. Kept on the
agent's in-process bus, like /user/transcript."""

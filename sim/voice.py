"""Spoken simulation: people say their lines as synthesized audio into the mic stream, the
agent hears them through VAD and ASR, and answers through streaming TTS into a WAV file.

The person's voice is pitched unlike the robot's, and the robot's voice goes to its own
topic; with an echo path (`sim.echo`, `--echo`) the room also brings the robot's voice back
into the mic, as a robot's speaker does, and the listener must cancel it. With a backend
that speaks (an omni model) the robot has no voice of its own: only the backend's audio
is played. Each person has a voice of their own (`PEOPLE_VOICES`, pitch and formants
shifted apart), so speaker identification can be tested: with a `SpeakerId` the listener
names the person by voice, not by the script.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omni_agent.errors import UserError
from omni_agent.transport import Bus

if TYPE_CHECKING:  # the speech stack loads its models on import: only when used
    from omni_agent.config import ListeningConfig
    from omni_agent.model.profiles import BackendProfile
    from omni_agent.speech.listener import Listener
    from omni_agent.speech.outputs import TtsSpeechOutput
    from omni_agent.speech.speaker import SpeakerId
    from omni_agent.speech.vad import VadConfig
    from omni_agent.speech.voices import EchoPath, PersonVoice, RoomEcho, UserVoice

PEOPLE_VOICES: dict[str, tuple[float, float]] = {
    "Alice": (1.2, 1.0),  # the default person voice (UserVoice())
    "Bob": (0.82, 0.95),
    "Carol": (1.05, 1.1),
    "Dora": (1.5, 1.0),
    "Eve": (0.7, 1.05),
}
"""(pitch, rate) of each scripted person's voice; others get one derived from their name.
All are one TTS voice with pitch and formants shifted: shifts closer than about 0.15
sound alike to the speaker encoder (docs/speech.md)."""
FALLBACK_PITCHES = (0.75, 0.95, 1.15, 1.35, 1.55)


def user_voice(person: str | None) -> UserVoice:
    """The distinct voice of a simulated person (the same for the same name, every run)."""
    from omni_agent.speech.voices import UserVoice

    if person in PEOPLE_VOICES:
        pitch, rate = PEOPLE_VOICES[person]
    else:
        pitch = FALLBACK_PITCHES[sum(map(ord, person or "")) % len(FALLBACK_PITCHES)]
        rate = 1.0
    return UserVoice(pitch=pitch, rate=rate)


SPEECH_MODULES = ("webrtcvad", "faster_whisper", "piper")
LEAD_IN_S = 0.5
"""The room (quiet, or its noise) before each line: the listener's pre-roll (300 ms) then
holds the same audio on every run, not whatever the last quiet spell was cut at, so
whisper hears each line the same way every time."""


def speech_unavailable() -> str | None:
    """Why spoken simulation cannot run here, or None if it can."""
    missing = [m for m in SPEECH_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return f"speech packages not installed ({', '.join(missing)})"
    from omni_agent.speech.models import piper_joe_paths, whisper_base_dir

    try:
        whisper_base_dir()
        piper_joe_paths()
    except UserError as exc:
        return str(exc)
    return None


@dataclass
class SimVoice:
    """The speech stack of one spoken episode."""

    listener: Listener
    output: TtsSpeechOutput
    person: PersonVoice
    robot_wav: Path
    speed: float = 1.0
    """Audio time per real second, both ways: people talk and the robot plays this fast
    (endpointing counts samples, so it hears the same at any speed)."""
    voices: dict[str, PersonVoice] | None = None
    """One voice per person, made when they first speak."""
    echo: RoomEcho | None = None
    """The robot's own voice as the mic hears it, mixed into everything fed to the mic."""

    def voice_of(self, person: str | None) -> PersonVoice:
        if self.voices is None or person is None:
            return self.person
        if person not in self.voices:
            from omni_agent.speech.voices import PersonVoice

            voice = user_voice(person)
            same = voice == self.person.voice  # one piper model fewer
            self.voices[person] = self.person if same else PersonVoice(voice, deterministic=True)
        return self.voices[person]

    _talking: int = field(default=0, init=False)
    _voice_on: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _voice_off: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def line_audio(
        self,
        text: str,
        noise_dbfs: float | None = None,
        seed: int = 0,
        person: str | None = None,
    ) -> bytes:
        """A line as it reaches the mic, in `person`'s voice: LEAD_IN_S of the room, then
        the words."""
        from omni_agent.speech.voices import silence

        words = self.voice_of(person).say(text, noise_dbfs=noise_dbfs, seed=seed)
        return silence(LEAD_IN_S, noise_dbfs, seed) + words

    async def say(
        self,
        bus: Bus,
        text: str,
        person: str,
        done: asyncio.Event,
        *,
        noise_dbfs: float | None = None,
        seed: int = 0,
        on_said: Callable[[], None] | None = None,
        audio: bytes | None = None,
    ) -> None:
        """Speak one line into the mic (over background noise at `noise_dbfs`, if given;
        `audio`: its `line_audio`, if made already), call `on_said` once all of it is in,
        then keep the room quiet, or as noisy, until the turn is done. While someone else
        speaks, the room is their voice: one source feeds the mic at a time."""
        from omni_agent.speech.voices import feed_mic, silence

        if audio is None:
            audio = await asyncio.to_thread(self.line_audio, text, noise_dbfs, seed, person)
        self.listener.config.person = person  # the sim knows who speaks; no speaker id yet
        self._talking += 1
        self._voice_on.set()
        self._voice_off.clear()
        try:
            await feed_mic(bus, audio, speed=self.speed, echo=self.echo)
        finally:
            self._talking -= 1
            if not self._talking:
                self._voice_on.clear()
                self._voice_off.set()
        if on_said is not None:
            on_said()
        while not done.is_set():
            if self._talking:
                await _first(done.wait(), self._voice_off.wait())
            else:
                quiet = feed_mic(
                    bus, silence(0.2, noise_dbfs, seed), speed=self.speed, echo=self.echo
                )
                await _first(quiet, done.wait(), self._voice_on.wait())


async def _first(*steps: Coroutine[Any, Any, Any]) -> None:
    """Run the steps until one of them ends; cancel the others."""
    tasks = [asyncio.ensure_future(s) for s in steps]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def sim_voice(
    bus: Bus,
    robot_wav: Path,
    profile: BackendProfile,
    *,
    overlap: bool = True,
    speed: float = 1.0,
    speaker: SpeakerId | None = None,
    vad: VadConfig | None = None,
    echo: EchoPath | None = None,
    listening: ListeningConfig | None = None,
) -> AsyncIterator[SimVoice]:
    """The robot's speech stack as `profile` calls for it (omni_agent.runtime.open_speech),
    its voice also written to `robot_wav`, and the people's voices. With `echo` the mic
    hears the robot through that path, and the listener cancels it if `listening` says so;
    without, the mic never hears the robot and nothing is cancelled.

    `overlap=False` runs the stages one after another (ASR after the endpoint, speech after
    the whole reply): the baseline the latency benchmark compares against. With a backend
    that speaks, all speech heard is the backend's (`NoRobotVoice`).
    """
    from omni_agent.runtime import open_speech
    from omni_agent.speech.sinks import AudioSink, TopicSink, WavSink
    from omni_agent.speech.voices import PersonVoice, RoomEcho

    robot_wav.parent.mkdir(parents=True, exist_ok=True)
    sinks: list[AudioSink] = [TopicSink(bus), WavSink(robot_wav)]
    from omni_agent.config import ListeningConfig

    room = RoomEcho(bus, echo) if echo is not None else None
    listening = listening or ListeningConfig()
    if room is None:  # nothing of the robot reaches this mic: nothing to cancel
        listening = listening.model_copy(update={"echo_cancellation": False})
    async with open_speech(
        bus, profile, sinks, overlap=overlap, speed=speed, speaker=speaker, vad=vad,
        listening=listening,
    ) as speech:  # fmt: skip
        person = await asyncio.to_thread(PersonVoice, deterministic=True)
        try:
            yield SimVoice(
                speech.listener, speech.output, person, robot_wav, speed, voices={}, echo=room
            )
        finally:
            if room is not None:
                room.close()


def echo_path(spec: str | None) -> EchoPath | None:
    """The sim's echo path from `sim.echo` ("GAIN_DB[,DELAY_MS]"), or None."""
    if spec is None:
        return None
    from omni_agent.speech.voices import EchoPath

    return EchoPath.parse(spec)

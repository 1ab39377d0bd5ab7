"""One assembly: a Config becomes a running agent, the same way everywhere.

The simulator, agent_node and the benches need the same parts: the brain, long-term
memory with its summarizer, the listener (VAD, ASR, speaker identification, speculative
ASR and recall), the speech output the backend calls for, the live view and the Agent
that joins them. Built in each caller, a feature wired in one place (memory, speaker id,
the omni path) went missing in another; here each part is made once, and callers bring
only what is theirs: the bus, the robot, their event sinks and, in the simulator, the
clock that memory reads.

Whether the backend hears and speaks is decided once, from its profile (`Modalities`).
A backend that hears gets the audio at the endpoint (ASR off the critical path; the
transcript follows for memory and recall). A backend that speaks is played as it
streams, and no synthesizer (piper) is loaded: the robot has one voice, the model's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omni_agent.actions import Robot
from omni_agent.agent import Agent, TurnMemory
from omni_agent.brain import Brain, open_brain
from omni_agent.config import Config, ListeningConfig
from omni_agent.events import EventSink
from omni_agent.model.profiles import BackendProfile
from omni_agent.safety import SiteMap
from omni_agent.speech.handle import SpeechOutput
from omni_agent.transport import Bus

DRAIN_TIMEOUT_S = 30.0
"""How long a stopping agent waits for the memory writes of its last turns."""

if TYPE_CHECKING:  # memory and the speech stack load models on import: only when used
    from omni_agent.recall import LongTermMemory
    from omni_agent.speech.listener import Listener
    from omni_agent.speech.outputs import TtsSpeechOutput
    from omni_agent.speech.sinks import AudioSink
    from omni_agent.speech.speaker import SpeakerId
    from omni_agent.speech.vad import VadConfig


@dataclass(frozen=True)
class Modalities:
    """What the backend does with sound: the one place this is read from its profile."""

    hears: bool
    """It takes the person's audio: the utterance goes out at the endpoint with audio."""
    speaks: bool
    """It answers with audio: that audio is played and the robot synthesises nothing."""

    @classmethod
    def of(cls, profile: BackendProfile) -> Modalities:
        return cls(hears=profile.audio_in, speaks=profile.audio_out)


class NoRobotVoice:
    """The robot's synthesizer when the backend speaks: silent, and it notes each ask.

    An omni model's speech is played as it arrives; a robot that also synthesised the
    reply's text would speak twice (or in another voice), so a test can assert that
    `asked` stays empty."""

    name = "none (the backend speaks)"
    sample_rate = 22_050

    def __init__(self) -> None:
        self.asked: list[str] = []

    def synthesize(self, text: str) -> bytes:
        self.asked.append(text)
        return b""


# ------------------------------------------------------------------------------ parts


def build_agent(
    config: Config,
    bus: Bus,
    robot: Robot,
    brain: Brain,
    *,
    speech: SpeechOutput | None = None,
    memory: TurnMemory | None = None,
    site: SiteMap | None = None,
    on_event: EventSink | None = None,
) -> Agent:
    """The agent loop on `brain`: the only place (tests aside) an Agent is constructed."""
    return Agent(
        config, bus, robot, brain.client, brain.profile,
        speech=speech, memory=memory, site=site, on_event=on_event,
    )  # fmt: skip


def open_memory(
    config: Config,
    path: Path | None = None,
    *,
    clock: Callable[[], float] = time.time,
    summarizer_brain: Brain | None = None,
    session: str | None = None,
) -> LongTermMemory:
    """Long-term memory: `path` (an episode's own file), else `memory.url` (a fleet's
    PostgreSQL), else the SQLite file at `memory.path`. With `summarizer_brain`, old turns
    are consolidated by that model, always second to a conversation (ModelSummarizer);
    without it memory keeps a deterministic extractive summary."""
    from omni_agent.recall import LongTermMemory, ModelSummarizer

    summarizer = (
        ModelSummarizer(summarizer_brain.client, config.model) if summarizer_brain else None
    )
    return LongTermMemory.open(
        config.memory, path, clock=clock, session=session, summarizer=summarizer
    )


def voiceprints_path(config: Config, memory_path: Path | None = None) -> Path:
    """Where speaker identification keeps voiceprints: beside the memory database, so
    forgetting a person can find them."""
    from memory.voiceprints import VoiceprintStore

    return VoiceprintStore.beside(memory_path or config.memory.path)


def open_speaker_id(path: Path, threshold: float | None = None) -> SpeakerId:
    """Speaker identification with its voiceprints in the SQLite file at `path`."""
    from memory.voiceprints import VoiceprintStore
    from omni_agent.speech.speaker import SpeakerId

    store = VoiceprintStore(path)
    if threshold is None:
        return SpeakerId(store)
    return SpeakerId(store, threshold=threshold)


@dataclass
class Speech:
    """The robot's ears and voice."""

    listener: Listener
    output: TtsSpeechOutput
    modalities: Modalities


@contextlib.asynccontextmanager
async def open_speech(
    bus: Bus,
    profile: BackendProfile,
    sinks: Sequence[AudioSink] | None = None,
    *,
    overlap: bool = True,
    speed: float = 1.0,
    speaker: SpeakerId | None = None,
    vad: VadConfig | None = None,
    listening: ListeningConfig | None = None,
) -> AsyncIterator[Speech]:
    """Listener (VAD + whisper ASR, speaker identification if given) on the mic, and the
    robot's voice into `sinks` (default: /speech/audio on the bus). `listening`: echo
    cancellation, barge-in and backchannels (default: `ListeningConfig()`).

    `overlap=False` runs the stages one after another (ASR after the endpoint, speech after
    the whole reply): the baseline the latency benchmark compares against. A backend that
    speaks gets a silent synthesizer (`NoRobotVoice`): piper is never loaded for it.
    """
    from omni_agent.speech.asr import WhisperAsr
    from omni_agent.speech.listener import Listener
    from omni_agent.speech.outputs import TtsOutputConfig, TtsSpeechOutput
    from omni_agent.speech.sinks import TopicSink
    from omni_agent.speech.vad import VadConfig

    modalities = Modalities.of(profile)
    asr = await asyncio.to_thread(WhisperAsr)
    # backends that hear get the audio at the endpoint; the transcript follows for memory
    listener = Listener(
        bus,
        vad or VadConfig(),
        asr,
        (listening or ListeningConfig()).listener_config(
            wait_for_transcript=not modalities.hears, speculative_asr=overlap
        ),
        speaker=speaker,
    )
    whole_reply = 10**6  # a clause limit no reply reaches: speak only once it is complete
    tts_config = (
        TtsOutputConfig(speed=speed)
        if overlap
        else TtsOutputConfig(
            speed=speed, first_clause_min_chars=whole_reply, max_piece_chars=whole_reply
        )
    )
    tts = NoRobotVoice() if modalities.speaks else None  # None: piper, loaded here
    output = TtsSpeechOutput(
        list(sinks) if sinks is not None else [TopicSink(bus)], tts, bus=bus, config=tts_config
    )
    listener.start()
    try:
        yield Speech(listener, output, modalities)
    finally:
        await listener.close()
        await output.close()


# --------------------------------------------------------------------- the whole agent


@dataclass
class Runtime:
    """A running agent and the parts it was built from."""

    agent: Agent
    brain: Brain
    memory: LongTermMemory
    speech: Speech | None
    speaker: SpeakerId | None
    voiceprints: Path
    """The voiceprint file of this memory (forgetting reaches it even with speaker id off)."""

    async def forget(self, person: str) -> str:
        """Forget `person` everywhere this robot keeps them: their turns (with summaries,
        facts and files) and their voiceprint. Returns one line saying what went."""
        name = person.strip()
        if not name:
            return "no person named: nothing forgotten"
        await self.agent.drain()  # a turn still being written would bring them back
        turns = await asyncio.to_thread(self.memory.memory.forget_person, name)
        prints = 0
        if self.speaker is not None:
            prints = self.speaker.store.forget(name)
        elif self.voiceprints.exists():
            from memory.voiceprints import VoiceprintStore

            store = VoiceprintStore(self.voiceprints)
            try:
                prints = store.forget(name)
            finally:
                store.close()
        voice = ", and their voiceprint" if prints else ""
        return f"forgot {name}: {turns} turns removed{voice}"


@contextlib.asynccontextmanager
async def open_runtime(
    config: Config,
    bus: Bus,
    robot: Robot,
    *,
    brain: Brain | None = None,
    voice: bool = False,
    speaker_id: bool = True,
    voiceprints: Path | None = None,
    speaker_threshold: float | None = None,
    site: SiteMap | None = None,
    on_event: EventSink | None = None,
    summarize: bool = True,
) -> AsyncIterator[Runtime]:
    """The whole agent on a robot: the configured brain (or `brain`), long-term memory
    from `config.memory` (consolidated by the brain's model when `summarize`), and with
    `voice` the speech stack the profile calls for, with speaker identification unless
    `speaker_id` is off. Run it with `runtime.agent.run()`."""
    async with contextlib.AsyncExitStack() as stack:
        if brain is None:
            brain = await stack.enter_async_context(open_brain(config))
        memory = open_memory(config, summarizer_brain=brain if summarize else None)
        stack.callback(memory.close)
        prints = voiceprints or voiceprints_path(config)
        speaker: SpeakerId | None = None
        speech: Speech | None = None
        if voice:
            if speaker_id:
                speaker = open_speaker_id(prints, speaker_threshold)
                stack.callback(speaker.store.close)
            speech = await stack.enter_async_context(
                open_speech(
                    bus,
                    brain.profile,
                    speaker=speaker,
                    vad=config.endpointing.vad_config(),
                    listening=config.listening,
                )
            )
        agent = build_agent(
            config, bus, robot, brain, speech=speech.output if speech else None,
            memory=memory, site=site, on_event=on_event,
        )  # fmt: skip
        try:
            yield Runtime(agent, brain, memory, speech, speaker, prints)
        finally:
            # turns still being written reach the file before it closes: a restart keeps them
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(agent.drain(), DRAIN_TIMEOUT_S)

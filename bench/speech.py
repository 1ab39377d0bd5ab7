"""`omni-agent bench speech`: the speech stack's figures, then voice-to-voice latency of the
whole spoken agent, each against a baseline measured in the same run.

Components, on this machine's CPU:
- ASR: real-time factor and WER of whisper-base (short-context and stock 30 s passes);
- TTS: piper's real-time factor and first-audio latency through a streaming handle;
- endpointing: endpoint decision and transcript ready, after the actual end of speech,
  with and without speculative ASR at pauses (mic fed in real time);
- speculative recall: endpoint -> request sent by the agent, with memory retrieval started
  on the transcript of the pause and without (retrieval after the final transcript), over
  a store of MEMORY_TURNS turns, and how often the turn used the speculative context;
- barge-in: user speech start in the mic stream -> robot playback stopped.

Voice-to-voice: a simulated person speaks lines into a live microphone (real time, silence
between lines) and the agent answers through VAD, whisper, a brain and piper in the
simulated home. It counts from the actual end of the voice to the first robot audio at the
output, endpointing silence included. The baseline runs the same stages one after another
(ASR after the endpoint, speech after the whole reply). The brain is a parameter
(`--brain`, see BRAINS); `--against pipecat` runs the same lines through a pipecat-ai
pipeline built from the same three models (bench/speech_pipecat.py). Both are timed by
the same stack-agnostic code (bench/voice_turns.py): a turn that gets no answer is counted
and reported, and the run goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.voice_turns import (
    Progress,
    RealTimeMic,
    SpokenStack,
    TopicReplies,
    describe,
    loop_gone,
    measure_turns,
    stats,
)
from omni_agent.brain import Brain, open_brain
from omni_agent.config import Config
from omni_agent.errors import UserError
from omni_agent.messages import AUDIO_SAMPLE_RATE, AudioChunk, VoiceActivity
from omni_agent.transport import (
    MIC,
    SPEECH_AUDIO,
    STATE,
    USER_PARTIAL,
    VOICE,
    Bus,
    Subscription,
)
from sim.instant_brain import omni_double_brain

if TYPE_CHECKING:  # the speech stack loads its models on import: only when measured
    from omni_agent.agent import Agent
    from omni_agent.speech.asr import WhisperAsr
    from omni_agent.speech.handle import SpeechHandle
    from omni_agent.speech.tts import PiperTts
    from omni_agent.speech.vad import VadConfig
    from omni_agent.speech.voices import PersonVoice

log = logging.getLogger(__name__)

PAUSED: list[tuple[list[str], float]] = [
    (["I want to go to the, um,", "kitchen, please."], 0.7),
    (["Bring me the red cup, I mean", "the blue one."], 0.5),
    (["First go to the hallway and then", "turn left at the door."], 0.6),
    (["My sister's name is", "Margaret."], 0.8),
]
PAUSED_LINES = {" ".join(parts): (parts, pause_s) for parts, pause_s in PAUSED}
"""Lines spoken in two parts with a silence between (as `bench turns` has them): the
answer counts from the end of the whole sentence, and a line the robot answers in the
pause is cut in two, a failed turn."""

LINES = [
    "Please bring me the red cup from the kitchen table.",
    "I want to go to the, um, kitchen, please.",
    "Go to the charging station.",
    "What did I tell you about my sister yesterday?",
    "Bring me the red cup, I mean the blue one.",
    "Turn left and move forward two meters.",
    "Can you find my keys?",
    "First go to the hallway and then turn left at the door.",
    "Follow me to the living room.",
    "Put the book on the shelf next to the window.",
    "My sister's name is Margaret.",
    "Where did you see my glasses this morning?",
]

ROBOT_TEXT = (
    "Of course. I will go to the kitchen first, and then I will look for the red cup on "
    "the table near the window. After that I will come back to the living room and hand "
    "it to you, which should take about two minutes."
)

BrainOpener = Callable[[Config], contextlib.AbstractAsyncContextManager[Brain]]
BRAINS: dict[str, BrainOpener] = {"embedded": open_brain, "omni-double": omni_double_brain}
"""The paths voice-to-voice is measured on, by `--brain` name: each opens a Brain (client,
profile) for the run. A backend that hears gets the audio at the endpoint and one that
speaks is played as it arrives (the sim voice follows `brain.profile`). "omni-double" is
the omni path: the agent sends the audio, the double hears it with whisper and answers
with piper speech at 24 kHz, so its figures include a second ASR pass and TTS in the
"model"."""

ANSWERING = {"THINKING", "SPEAKING", "ACTING"}
"""Agent states (on /agent/state) in which a turn's answer is still under way."""

STAGES = ("endpoint", "request_sent", "first_token", "first_speech", "voice_to_voice")


def spoken_lines(turns: int) -> list[str]:
    return (LINES * (turns // len(LINES) + 1))[:turns]


def voice_ends(pcm: bytes, release_db: float = 35.0) -> int:
    """Bytes up to the true end of the voice: the last 10 ms whose level is within
    `release_db` of the loudest (piper leaves a quiet tail after the last word)."""
    from omni_agent.speech.vad import frame_dbfs

    step = AUDIO_SAMPLE_RATE // 100 * 2
    levels = [frame_dbfs(pcm[i : i + step]) for i in range(0, len(pcm) - step + 1, step)]
    if not levels:
        return len(pcm)
    floor = max(levels) - release_db
    last = max(i for i, level in enumerate(levels) if level >= floor)
    return (last + 1) * step


def line_clip(person: PersonVoice, line: str) -> bytes:
    """The line as the person says it, a pause inside where it has one, cut at the true end
    of the voice: the mic's stamp of its last sample is the end of speech."""
    from omni_agent.speech.voices import silence

    parts, pause_s = PAUSED_LINES.get(line, ([line], 0.0))
    pcm = b""
    for i, part in enumerate(parts):
        voice = person.say(part)
        pcm += voice[: voice_ends(voice)] + (silence(pause_s) if i < len(parts) - 1 else b"")
    return pcm


# ---------------------------------------------------------------------------- components


def bench_asr(asr: WhisperAsr, clips: list[tuple[str, bytes]]) -> dict[str, Any]:
    from omni_agent.speech.wer import word_error_rate

    out: dict[str, Any] = {}
    for mode in (True, False):
        asr.short_context = mode
        rtfs, secs, wers = [], [], []
        for text, pcm in clips:
            result = asr.transcribe(pcm)
            rtfs.append(result.rtf)
            secs.append(result.compute_seconds)
            wers.append(word_error_rate(text, result.text))
        out["short_context" if mode else "full_30s"] = {
            "rtf": stats(rtfs),
            "seconds": stats(secs),
            "wer_mean": round(sum(wers) / len(wers), 4),
        }
    asr.short_context = True
    return out


async def bench_tts(tts: PiperTts) -> dict[str, Any]:
    from omni_agent.speech.outputs import TtsOutputConfig, TtsSpeechOutput
    from omni_agent.speech.sinks import MemorySink

    rtfs = []
    for line in LINES:
        start = time.perf_counter()
        pcm = tts.synthesize(line)
        rtfs.append((time.perf_counter() - start) / (len(pcm) / 2 / tts.sample_rate))
    firsts = []
    output = TtsSpeechOutput([MemorySink(tts.sample_rate)], tts, config=TtsOutputConfig(speed=None))
    for _ in range(5):
        handle = output.start()
        for i in range(0, len(ROBOT_TEXT), 4):  # tokens arriving faster than speech
            handle.push_text(ROBOT_TEXT[i : i + 4])
        start = handle.created_at
        handle.end_input()
        await handle.wait_for_playout()
        if handle.first_audio_at is not None:
            firsts.append(handle.first_audio_at - start)
    await output.close()
    return {"rtf": stats(rtfs), "first_audio_s": stats(firsts)}


async def bench_endpointing(
    person_clips: list[tuple[str, bytes]],
    asr: WhisperAsr,
    vad: VadConfig,
    *,
    speculative: bool,
) -> dict[str, Any]:
    from omni_agent.speech.listener import Listener, ListenerConfig
    from omni_agent.speech.voices import feed_mic, silence
    from omni_agent.speech.wer import word_error_rate
    from omni_agent.transport import USER_TEXT

    bus = Bus()
    utterances = bus.subscribe(USER_TEXT)
    config = ListenerConfig(speculative_asr=speculative)
    ends, endpoints, asr_done, wers = [], [], [], []
    missed = 0
    async with Listener(bus, vad, asr, config) as listener:
        await feed_mic(bus, silence(0.3))
        for text, pcm in person_clips:
            speech_end = await feed_mic(bus, pcm)
            await feed_mic(bus, silence(endpoint_within_s(vad) + 0.6))
            try:
                utterance = await asyncio.wait_for(utterances.get(), 10)
            except TimeoutError:
                missed += 1
                continue
            timing = listener.latency[-1]
            ends.append(timing["speech_end"] - speech_end)
            endpoints.append(timing["endpoint"] - speech_end)
            asr_done.append(timing["asr_done"] - speech_end)
            wers.append(word_error_rate(text, utterance.text))
    return {
        "speculative_asr": speculative,
        "speech_end_error_s": stats(ends),
        "endpoint_after_speech_end_s": stats(endpoints),
        "transcript_after_speech_end_s": stats(asr_done),
        "wer_mean": round(sum(wers) / len(wers), 4) if wers else None,
        "utterances_missed": missed,
    }


def endpoint_within_s(vad: VadConfig) -> float:
    """The longest silence before the endpoint: the policy's cap, or the fixed silence."""
    return (vad.turn.max_wait_ms if vad.turn else vad.trailing_silence_ms) / 1000


MEMORY_TURNS = 20_000
"""Stored turns for the speculative-recall figures (the first 1000 embedded for real)."""


async def bench_speculative_recall(
    person_clips: list[tuple[str, bytes]],
    asr: WhisperAsr,
    vad: VadConfig,
    workdir: Path,
    *,
    speculative: bool,
    memory_turns: int = MEMORY_TURNS,
) -> dict[str, Any]:
    """The agent (instant brain, text backend) with a real long-term memory behind the real
    listener: from the endpoint to the request leaving for the model, when retrieval
    starts on the pause's transcript (speculative) or after the final one (baseline)."""
    from bench.dialogues import generate
    from bench.memory import _fill
    from memory.facade import Memory
    from omni_agent.events import AgentEvent, TurnEnded
    from omni_agent.recall import LongTermMemory
    from omni_agent.runtime import build_agent
    from omni_agent.speech.listener import Listener, ListenerConfig
    from omni_agent.speech.voices import feed_mic, silence
    from sim.instant_brain import instant_brain
    from sim.robot import SimRobot
    from sim.world import World

    mem = Memory.open(Path(tempfile.mkdtemp(dir=workdir)) / "robot.db")  # a fresh store
    await asyncio.to_thread(_fill, mem, generate(2000), memory_turns, 1000)
    config = Config()
    config.memory.speculative_recall = speculative
    ltm = LongTermMemory(mem, config.memory.budget_tokens)
    bus, world = Bus(), World.load()
    ended: asyncio.Queue[TurnEnded] = asyncio.Queue()

    def on_event(event: AgentEvent) -> None:
        if isinstance(event, TurnEnded):
            ended.put_nowait(event)

    waits: list[float] = []
    missed = ahead = 0
    async with instant_brain(config) as brain:
        agent = build_agent(
            config, bus, SimRobot(world, bus), brain,
            memory=ltm, site=world.site_map(), on_event=on_event,
        )  # fmt: skip
        serving = asyncio.create_task(agent.run())
        await agent.ready.wait()
        partials = bus.subscribe(USER_PARTIAL)  # what the listener offered before endpoints
        listener = Listener(bus, vad, asr, ListenerConfig(person="alice"))
        try:
            async with listener:
                await feed_mic(bus, silence(0.3))
                for _, pcm in person_clips:
                    await feed_mic(bus, pcm)
                    await feed_mic(bus, silence(endpoint_within_s(vad) + 0.6))
                    try:
                        await asyncio.wait_for(ended.get(), 10)
                    except TimeoutError:
                        missed += 1
            offered: dict[str, str] = {}  # the newest partial of each utterance
            while (partial := partials.get_nowait()) is not None:
                offered[partial.turn_id] = partial.text
            timings = {t["speech_end"]: t for t in listener.latency}
            for turn in agent.turns:
                timing = timings.get(turn.trace.speech_end or -1.0)
                if timing is not None and turn.trace.request_sent is not None:
                    waits.append(turn.trace.request_sent - timing["endpoint"])
                    last = offered.get(turn.turn_id)
                    ahead += last is not None and last == turn.user_text
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            ltm.close()
    turns = len(agent.turns)
    return {
        "speculative_recall": speculative,
        "memory_turns": memory_turns,
        "turns": turns,
        "turns_missed": missed,
        "prefetch_hits": agent.speculation.hits,
        "hit_rate": round(agent.speculation.hits / turns, 3) if turns else None,
        "context_builds": ltm.builds,
        "final_words_known_before_endpoint": ahead,
        "request_after_endpoint_s": stats(waits),
    }


async def bench_barge_in(tts: PiperTts, person: PersonVoice, trials: int) -> dict[str, Any]:
    from omni_agent.speech.listener import Listener
    from omni_agent.speech.outputs import TtsOutputConfig, TtsSpeechOutput
    from omni_agent.speech.sinks import MemorySink
    from omni_agent.speech.vad import VadConfig
    from omni_agent.speech.voices import feed_mic, silence

    reactions, detections = [], []
    missed = 0
    interruption = person.say("Wait, stop please.")
    for trial in range(trials):
        bus = Bus()
        voice = bus.subscribe(VOICE)
        output = TtsSpeechOutput([MemorySink(tts.sample_rate)], tts, config=TtsOutputConfig())
        async with Listener(bus, VadConfig(), None):
            handle = output.start()
            handle.push_text(ROBOT_TEXT)
            handle.end_input()
            detected: list[float] = []
            reaction = asyncio.create_task(interrupt_on_voice(voice, handle, detected))
            await feed_mic(bus, silence(0.4 + 0.05 * (trial % 7)))
            onset = time.monotonic()  # the next sample fed is the first of the speech
            await feed_mic(bus, interruption + silence(0.3))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reaction, 2)
        if handle.stopped_at is None or not detected:
            missed += 1
        else:
            reactions.append(handle.stopped_at - onset)
            detections.append(detected[0] - onset)
        await output.close()
    return {
        "reaction_s": stats(reactions),
        "vad_detection_s": stats(detections),
        "missed": missed,
    }


async def interrupt_on_voice(
    voice: Subscription[VoiceActivity], handle: SpeechHandle, detected: list[float]
) -> None:
    """The agent's barge-in rule in miniature: the first user speech interrupts the handle."""
    async for activity in voice:
        if activity.speaking:
            detected.append(time.monotonic())
            handle.interrupt()
            return


async def run_components(
    clips: list[tuple[str, bytes]], asr: WhisperAsr, tts: PiperTts, person: PersonVoice,
    barge_in_trials: int, vad: VadConfig,
) -> dict[str, Any]:  # fmt: skip
    results: dict[str, Any] = {"asr": bench_asr(asr, clips), "tts": await bench_tts(tts)}
    results["endpointing"] = [
        await bench_endpointing(clips, asr, vad, speculative=True),
        await bench_endpointing(clips, asr, vad, speculative=False),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-speech-") as workdir:
        results["speculative_recall"] = [
            await bench_speculative_recall(clips, asr, vad, Path(workdir), speculative=True),
            await bench_speculative_recall(clips, asr, vad, Path(workdir), speculative=False),
        ]
    results["barge_in"] = await bench_barge_in(tts, person, barge_in_trials)
    results["audio_s_per_turn"] = round(
        statistics.mean(len(p) / 2 / AUDIO_SAMPLE_RATE for _, p in clips), 3
    )
    return results


# ---------------------------------------------------------------------------- the agent


@contextlib.asynccontextmanager
async def agent_stack(
    config: Config, brain: Brain, clips: dict[str, bytes], *, overlap: bool, name: str
) -> AsyncIterator[tuple[SpokenStack, Agent]]:
    """The agent in the simulated home with its speech stack, a live mic and a speaker."""
    from omni_agent.runtime import build_agent
    from sim.robot import SimRobot
    from sim.voice import sim_voice
    from sim.world import World

    world = World.load()
    bus = Bus()
    robot = SimRobot(world, bus)
    wav = config.sim.out_dir / f"bench-speech-{name}.wav"
    vad = config.endpointing.vad_config()  # the robot's own end of turn
    async with sim_voice(bus, wav, brain.profile, overlap=overlap, vad=vad) as voice:
        agent = build_agent(config, bus, robot, brain, speech=voice.output, site=world.site_map())
        loop = asyncio.create_task(agent.run())
        replies = bus.subscribe(SPEECH_AUDIO)

        async def deliver(pcm: bytes, stamp: float) -> None:
            bus.publish(MIC, AudioChunk(pcm=pcm, stamp=stamp))

        try:
            ready = asyncio.create_task(agent.ready.wait())
            await asyncio.wait({ready, loop}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if not loop.done():
                await agent.warm_up()
            async with RealTimeMic(deliver) as mic:

                async def speak(line: str) -> float:
                    return await mic.say(clips[line])

                def answering() -> bool:
                    state = bus.latest(STATE)
                    return state is not None and state.state in ANSWERING

                stack = SpokenStack(
                    name, speak, TopicReplies(replies), loop_gone(loop), answering,
                    heard=lambda: agent.turn_count,
                )  # fmt: skip
                yield stack, agent
        finally:
            replies.close()
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)


def stage_medians(agent: Agent) -> dict[str, dict[str, float]]:
    """Per-stage medians from the agent's own turn traces (where a turn has them)."""
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    for turn in agent.turns:
        trace = getattr(turn, "trace", None)
        if trace is None:
            continue
        for stage, ms in trace.stages_ms().items():
            if stage in stages:
                stages[stage].append(ms / 1000)
    return {s: stats(v) for s, v in stages.items() if v}


def speculation_use(agent: Agent) -> dict[str, Any]:
    """How each turn used the work started before its endpoint, and each turn's trace:
    the words, whether the recall prepared at the pause stood (or why not), whether the
    reply started there was used."""
    turns = [t for t in agent.turns if t.trace.recall_ahead]
    reasons: dict[str, int] = {}
    for turn in turns:
        reasons[turn.trace.recall_ahead] = reasons.get(turn.trace.recall_ahead, 0) + 1
    return {
        "recall_ahead": reasons,
        "early_replies_started": agent.speculation.early_replies,
        "early_replies_used": agent.speculation.early_used,
        "turns": [
            {
                "heard": t.user_text,
                "recall_ahead": t.trace.recall_ahead,
                "preempted": t.trace.preempted,
                "early_reply_ahead_of_endpoint_s": (
                    round(t.trace.utterance - t.trace.early_sent, 3)
                    if t.trace.early_sent is not None
                    else None
                ),
                "stages_s": {k: v / 1000 for k, v in t.trace.stages_ms().items()},
            }
            for t in turns
        ],
    }


async def run_agent(
    config: Config, brain: Brain, lines: list[str], clips: dict[str, bytes], *,
    overlap: bool, name: str, answer_timeout_s: float, progress: Progress | None,
) -> dict[str, Any]:  # fmt: skip
    try:
        async with agent_stack(config, brain, clips, overlap=overlap, name=name) as (stack, agent):
            load = os.getloadavg()[0]
            turns = await measure_turns(
                stack, lines, answer_timeout_s=answer_timeout_s, progress=progress
            )
            return {
                **turns.summary(),
                "stages_s": stage_medians(agent),
                "speculation": speculation_use(agent),
                "load_avg_1m_start_end": [round(load, 2), round(os.getloadavg()[0], 2)],
            }
    except UserError:
        raise
    except Exception as exc:  # the stack would not even start: a result of this run
        log.debug("%s did not run", name, exc_info=True)
        return {"turns": len(lines), "answered": 0, "error": describe(exc)}


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    am = a.get("voice_to_voice_s", {}).get("median")
    bm = b.get("voice_to_voice_s", {}).get("median")
    return round(am / bm, 3) if am and bm else None


# ---------------------------------------------------------------------------- the run


@dataclass
class SpeechBenchOptions:
    turns: int = 8
    baseline_turns: int = 8
    barge_in_trials: int = 10
    components: bool = True
    brains: list[str] = field(default_factory=lambda: ["embedded"])
    against: str | None = None
    answer_timeout_s: float = 20.0


def machine_load() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()]}


async def run_bench(
    config: Config, opts: SpeechBenchOptions, progress: Progress | None = None
) -> dict[str, Any]:
    """Every measurement of one run; each stack's faults are in its section, never raised."""
    from omni_agent.speech.asr import WhisperAsr
    from omni_agent.speech.tts import PiperTts
    from omni_agent.speech.voices import PersonVoice

    report: dict[str, Any] = {"bench": "speech", "machine_at_start": machine_load()}
    t = time.perf_counter()
    person = await asyncio.to_thread(PersonVoice, deterministic=True)
    lines = spoken_lines(max(opts.turns, opts.baseline_turns))
    clips = {line: line_clip(person, line) for line in lines}
    report["lines"] = lines[: opts.turns]
    if opts.components:
        if progress:
            progress("components: ASR, TTS, endpointing, barge-in")
        asr, tts = WhisperAsr(), PiperTts()
        report["load_s"] = round(time.perf_counter() - t, 3)
        comp_clips = [(line, clips[line]) for line in lines[: min(opts.turns, len(LINES))]]
        report["components"] = await run_components(
            comp_clips, asr, tts, person, opts.barge_in_trials, config.endpointing.vad_config()
        )
        del asr, tts
    report["voice_to_voice"] = {}
    for name in opts.brains:
        section: dict[str, Any] = {}
        report["voice_to_voice"][name] = section
        async with BRAINS[name](config) as brain:
            section["brain"] = brain.description
            section["overlapped"] = await run_agent(
                config, brain, lines[: opts.turns], clips, overlap=True, name=f"{name}-overlapped",
                answer_timeout_s=opts.answer_timeout_s, progress=progress,
            )  # fmt: skip
            if config.endpointing.preempt_threshold is not None:
                # the same stack with no reply started before the endpoint
                plain = config.model_copy(deep=True)
                plain.endpointing.preempt_threshold = None
                section["overlapped_no_preempt"] = await run_agent(
                    plain, brain, lines[: opts.turns], clips, overlap=True,
                    name=f"{name}-no-preempt", answer_timeout_s=opts.answer_timeout_s,
                    progress=progress,
                )  # fmt: skip
            if opts.baseline_turns:
                section["sequential_baseline"] = await run_agent(
                    config, brain, lines[: opts.baseline_turns], clips, overlap=False,
                    name=f"{name}-sequential", answer_timeout_s=opts.answer_timeout_s,
                    progress=progress,
                )  # fmt: skip
                section["ratio_overlapped_vs_sequential"] = _ratio(
                    section["overlapped"], section["sequential_baseline"]
                )
            if opts.against == "pipecat" and name == "embedded":
                from bench.speech_pipecat import run_pipecat

                theirs = await run_pipecat(
                    config, brain, lines[: opts.turns], clips,
                    answer_timeout_s=opts.answer_timeout_s, progress=progress,
                )  # fmt: skip
                theirs["ratio_ours_vs_pipecat"] = _ratio(section["overlapped"], theirs)
                report["against_pipecat"] = theirs
    report["machine_at_end"] = machine_load()
    return report


# ---------------------------------------------------------------------------- output


def _mm(stats: dict[str, float]) -> tuple[str, str]:
    return f"{stats.get('median', float('nan')):.3f}", f"{stats.get('max', float('nan')):.3f}"


def print_components(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="speech components (seconds unless noted)")
    table.add_column("measure")
    table.add_column("median", justify="right")
    table.add_column("max", justify="right")
    asr = results["asr"]
    table.add_row("ASR RTF, short context", *_mm(asr["short_context"]["rtf"]))
    table.add_row("ASR RTF, stock 30 s window (baseline)", *_mm(asr["full_30s"]["rtf"]))
    table.add_row("TTS RTF (piper joe)", *_mm(results["tts"]["rtf"]))
    table.add_row("TTS first audio after text", *_mm(results["tts"]["first_audio_s"]))
    for ep in results["endpointing"]:
        tag = "speculative ASR" if ep["speculative_asr"] else "ASR after endpoint (baseline)"
        table.add_row(f"endpoint after speech end ({tag})", *_mm(ep["endpoint_after_speech_end_s"]))
        table.add_row(
            f"transcript after speech end ({tag})", *_mm(ep["transcript_after_speech_end_s"])
        )
    for sr in results.get("speculative_recall", []):
        tag = (
            f"speculative recall, used in {sr['prefetch_hits']}/{sr['turns']} turns"
            if sr["speculative_recall"]
            else "recall after the transcript (baseline)"
        )
        label = f"endpoint -> request sent, {sr['memory_turns']} turns stored ({tag})"
        table.add_row(label, *_mm(sr["request_after_endpoint_s"]))
    table.add_row(
        "barge-in: speech start -> playback stopped", *_mm(results["barge_in"]["reaction_s"])
    )
    Console().print(table)
    print(
        f"ASR WER short {asr['short_context']['wer_mean']:.3f} / stock "
        f"{asr['full_30s']['wer_mean']:.3f}"
    )


def _run_line(label: str, run: dict[str, Any]) -> str:
    if "error" in run:
        return f"{label}: did not run: {run['error']}"
    v2v = run.get("voice_to_voice_s") or {}
    head = (
        f"{label}: voice-to-voice median {v2v['median']:.3f} s, p90 {v2v['p90']:.3f} s, "
        f"max {v2v['max']:.3f} s"
        if v2v
        else f"{label}: no answered turn"
    )
    text = f"{head}; {run['answered']}/{run['turns']} turns answered"
    if run.get("cut_in_two"):
        text += f", {run['cut_in_two']} cut in two"
    spec = run.get("speculation")
    if spec:
        used = spec["recall_ahead"].get("used", 0)
        reasons = spec["recall_ahead"].items()
        misses = ", ".join(f"{why}: {n}" for why, n in reasons if why != "used")
        text += (
            f"\n  recall prepared at a pause used in {used}/{len(spec['turns'])} turns"
            + (f" (not: {misses})" if misses else "")
            + f"; early replies started {spec['early_replies_started']}, "
            f"used {spec['early_replies_used']}"
        )
    if "load_avg_1m_start_end" in run:
        text += " under load {} -> {}".format(*run["load_avg_1m_start_end"])
    stages = run.get("stages_s") or {}
    if stages:
        text += (
            " (stage medians, s: "
            + ", ".join(
                f"{s} {v['median']:.3f}" for s, v in stages.items() if s != "voice_to_voice"
            )
            + ")"
        )
    for failure in run.get("failed", []):
        text += f"\n  turn {failure['turn'] + 1} ({failure['line']!r}) failed: {failure['reason']}"
    if run.get("skipped"):
        text += f"\n  {run['skipped']} turns skipped: {run['stopped']}"
    return text


def print_report(report: dict[str, Any], out: Path) -> None:
    if "components" in report:
        print_components(report["components"])
    for name, section in report["voice_to_voice"].items():
        print(f"{name} ({section['brain']}):")
        print("  " + _run_line("overlapped", section["overlapped"]).replace("\n", "\n  "))
        if "overlapped_no_preempt" in section:
            plain = _run_line("overlapped, no early reply", section["overlapped_no_preempt"])
            print("  " + plain.replace("\n", "\n  "))
        if "sequential_baseline" in section:
            base = section["sequential_baseline"]
            print("  " + _run_line("sequential baseline", base).replace("\n", "\n  "))
            ratio = section.get("ratio_overlapped_vs_sequential")
            print(f"  overlapped / sequential median: {ratio}x" if ratio else "  no ratio")
    if "against_pipecat" in report:
        theirs = report["against_pipecat"]
        label = f"pipecat-ai {theirs.get('version', '?')} (same models)"
        print(_run_line(label, theirs))
        ratio = theirs.get("ratio_ours_vs_pipecat")
        print(f"ours / pipecat median: {ratio}x" if ratio else "ours / pipecat: no ratio")
        for note in theirs.get("differences", []):
            print(f"  differs: {note}")
    start, end = report["machine_at_start"], report["machine_at_end"]
    print(
        f"machine: {start['cpus']} CPUs, load {start['load_avg_1_5_15'][0]} at start, "
        f"{end['load_avg_1_5_15'][0]} at end; written to {out}"
    )


def pipecat_unavailable() -> str | None:
    """Why `--against pipecat` cannot run here (its optional extra is missing), or None."""
    hint = "--against pipecat needs pipecat-ai: pip install -e '.[compare]'"
    if importlib.util.find_spec("pipecat") is None:
        return hint
    try:
        from loguru import logger  # pipecat logs through loguru: errors only, on stderr

        logger.remove()
        logger.add(sys.stderr, level="ERROR")
        import bench.speech_pipecat  # noqa: F401  (imports pipecat and its services)
    except ImportError as exc:
        return f"{hint} ({exc})"
    return None


def _progress_line() -> Progress | None:
    """A one-line progress display, only for a person watching a terminal."""
    if not sys.stdout.isatty():
        return None

    def show(text: str) -> None:
        print(f"\r\033[K{text}", end="", flush=True)

    return show


def _run(args: argparse.Namespace) -> int:
    config: Config = args.settings
    opts = SpeechBenchOptions(
        turns=args.turns,
        baseline_turns=args.turns if args.baseline_turns is None else args.baseline_turns,
        barge_in_trials=args.barge_in_trials,
        components=not args.no_components,
        brains=list(dict.fromkeys(args.brain or ["embedded"])),
        against=args.against,
        answer_timeout_s=args.answer_timeout,
    )
    if opts.turns < 1 or opts.baseline_turns < 0 or opts.barge_in_trials < 1:
        raise UserError("--turns and --barge-in-trials must be at least 1, --baseline-turns >= 0")
    if not opts.answer_timeout_s > 0:
        raise UserError("--answer-timeout must be more than 0 seconds")
    if opts.against == "pipecat":
        if "embedded" not in opts.brains:
            raise UserError("--against pipecat runs on the embedded stack: add --brain embedded")
        why = pipecat_unavailable()
        if why:
            raise UserError(why)
    progress = None if args.json else _progress_line()
    report = asyncio.run(run_bench(config, opts, progress))
    if progress:
        progress("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, args.out)
    return 0


def register_bench(bench_subparsers: Any) -> None:
    """Add `speech` to `omni-agent bench`; the parser's `func(args)` runs it."""
    parser = bench_subparsers.add_parser(
        "speech", help="ASR/TTS factors, endpointing, barge-in, voice-to-voice latency"
    )
    parser.add_argument("--turns", type=int, default=8, help="spoken turns per stack")
    parser.add_argument(
        "--baseline-turns", type=int, default=None, help="sequential baseline turns "
        "(default: --turns; 0 skips the baseline)",
    )  # fmt: skip
    parser.add_argument("--barge-in-trials", type=int, default=10)
    parser.add_argument(
        "--no-components", action="store_true", help="voice-to-voice only (skip ASR/TTS/VAD)"
    )
    parser.add_argument(
        "--brain", action="append", choices=sorted(BRAINS),
        help="the path to measure (repeatable; default: embedded)",
    )  # fmt: skip
    parser.add_argument(
        "--against", choices=["pipecat"],
        help="also run the same lines through a pipecat-ai pipeline of the same models",
    )  # fmt: skip
    parser.add_argument(
        "--answer-timeout", type=float, default=20.0, metavar="S",
        help="a turn with no robot audio this long after the speech ends counts as failed",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("runs/bench-speech.json"))
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run)

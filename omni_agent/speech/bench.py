"""`omni-agent bench speech`: the speech stack's latencies and real-time factors.

Measures, on this machine's CPU:
- ASR: real-time factor and WER of whisper-base (short-context and stock 30 s passes);
- TTS: piper's real-time factor and first-audio latency through a streaming handle;
- endpointing: endpoint decision and transcript ready, after the actual end of speech,
  with and without speculative ASR at pauses (mic fed in real time);
- barge-in: user speech start in the mic stream -> robot playback stopped.
Voice-to-voice latency needs the agent: `measure_voice_to_voice` is the hook for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omni_agent.messages import AUDIO_SAMPLE_RATE, AudioChunk, UserUtterance, VoiceActivity
from omni_agent.speech.asr import WhisperAsr
from omni_agent.speech.handle import SpeechHandle
from omni_agent.speech.listener import Listener, ListenerConfig
from omni_agent.speech.outputs import TtsOutputConfig, TtsSpeechOutput
from omni_agent.speech.sinks import MemorySink
from omni_agent.speech.tts import PiperTts
from omni_agent.speech.vad import VadConfig
from omni_agent.speech.voices import PersonVoice, feed_mic, silence
from omni_agent.speech.wer import word_error_rate
from omni_agent.transport import SPEECH_AUDIO, USER_TEXT, VOICE, Bus, Subscription

LINES = [
    "Please bring me the red cup from the kitchen table.",
    "Go to the charging station.",
    "What did I tell you about my sister yesterday?",
    "Turn left and move forward two meters.",
    "Can you find my keys?",
    "Follow me to the living room.",
    "Put the book on the shelf next to the window.",
    "Where did you see my glasses this morning?",
]

ROBOT_TEXT = (
    "Of course. I will go to the kitchen first, and then I will look for the red cup on "
    "the table near the window. After that I will come back to the living room and hand "
    "it to you, which should take about two minutes."
)


def _stats(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "median": round(statistics.median(values), 4),
        "max": round(max(values), 4),
        "min": round(min(values), 4),
        "n": len(values),
    }


def bench_asr(asr: WhisperAsr, clips: list[tuple[str, bytes]]) -> dict[str, Any]:
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
            "rtf": _stats(rtfs),
            "seconds": _stats(secs),
            "wer_mean": round(sum(wers) / len(wers), 4),
        }
    asr.short_context = True
    return out


async def bench_tts(tts: PiperTts) -> dict[str, Any]:
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
        assert handle.first_audio_at is not None
        firsts.append(handle.first_audio_at - start)
    await output.close()
    return {"rtf": _stats(rtfs), "first_audio_s": _stats(firsts)}


async def bench_endpointing(
    person_clips: list[tuple[str, bytes]],
    asr: WhisperAsr,
    vad: VadConfig,
    *,
    speculative: bool,
) -> dict[str, Any]:
    bus = Bus()
    utterances = bus.subscribe(USER_TEXT)
    config = ListenerConfig(speculative_asr=speculative)
    ends, endpoints, asr_done, wers = [], [], [], []
    async with Listener(bus, vad, asr, config) as listener:
        await feed_mic(bus, silence(0.3))
        for text, pcm in person_clips:
            speech_end = await feed_mic(bus, pcm)
            await feed_mic(bus, silence(vad.trailing_silence_ms / 1000 + 0.6))
            utterance = await asyncio.wait_for(utterances.get(), 10)
            timing = listener.latency[-1]
            ends.append(timing["speech_end"] - speech_end)
            endpoints.append(timing["endpoint"] - speech_end)
            asr_done.append(timing["asr_done"] - speech_end)
            wers.append(word_error_rate(text, utterance.text))
    return {
        "speculative_asr": speculative,
        "speech_end_error_s": _stats(ends),
        "endpoint_after_speech_end_s": _stats(endpoints),
        "transcript_after_speech_end_s": _stats(asr_done),
        "wer_mean": round(sum(wers) / len(wers), 4),
    }


async def bench_barge_in(tts: PiperTts, person: PersonVoice, trials: int) -> dict[str, Any]:
    reactions, detections = [], []
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
            await asyncio.wait_for(reaction, 2)
        assert handle.stopped_at is not None
        reactions.append(handle.stopped_at - onset)
        detections.append(detected[0] - onset)
        await output.close()
    return {"reaction_s": _stats(reactions), "vad_detection_s": _stats(detections)}


async def interrupt_on_voice(
    voice: Subscription[VoiceActivity], handle: SpeechHandle, detected: list[float]
) -> None:
    """The agent's barge-in rule in miniature: the first user speech interrupts the handle."""
    async for activity in voice:
        if activity.speaking:
            detected.append(time.monotonic())
            handle.interrupt()
            return


async def measure_voice_to_voice(
    bus: Bus,
    lines: Sequence[str],
    person: PersonVoice | None = None,
    *,
    answer_timeout_s: float = 20.0,
    gap_s: float = 1.0,
) -> list[dict[str, float]]:
    """Voice-to-voice latency with a real agent: the agent must already be running on `bus`
    with a Listener and a TtsSpeechOutput that has a TopicSink (robot audio on
    /speech/audio). For each line: speak it into the mic in real time, wait for the first
    robot audio chunk, then for the robot to go quiet. Returns per turn: speech_end,
    utterance (published), first_audio, and voice_to_voice (first_audio - speech_end).
    """
    person = person or PersonVoice()
    robot = bus.subscribe(SPEECH_AUDIO)
    utterances = bus.subscribe(USER_TEXT)
    turns: list[dict[str, float]] = []
    for line in lines:
        pcm = person.say(line)
        speech_end = await feed_mic(bus, pcm)
        silence_task = asyncio.create_task(feed_mic(bus, silence(answer_timeout_s)))
        try:
            utterance: UserUtterance = await asyncio.wait_for(utterances.get(), answer_timeout_s)
            while robot.get_nowait() is not None:  # drop audio of an earlier turn
                pass
            first: AudioChunk = await asyncio.wait_for(robot.get(), answer_timeout_s)
            turns.append(
                {
                    "speech_end": speech_end,
                    "utterance": utterance.stamp,
                    "first_audio": first.stamp,
                    "voice_to_voice": first.stamp - speech_end,
                }
            )
            # wait for the robot to finish (no audio for gap_s)
            while True:
                try:
                    await asyncio.wait_for(robot.get(), gap_s)
                except TimeoutError:
                    break
        finally:
            silence_task.cancel()
    robot.close()
    utterances.close()
    return turns


async def run_speech_bench(turns: int = 8, barge_in_trials: int = 10) -> dict[str, Any]:
    t = time.perf_counter()
    asr = WhisperAsr()
    tts = PiperTts()
    person = PersonVoice()
    load_s = time.perf_counter() - t
    lines = (LINES * (turns // len(LINES) + 1))[:turns]
    clips = [(line, person.say(line)) for line in lines]
    results: dict[str, Any] = {"load_s": round(load_s, 3)}
    results["asr"] = bench_asr(asr, clips)
    results["tts"] = await bench_tts(tts)
    vad = VadConfig()
    results["endpointing"] = [
        await bench_endpointing(clips, asr, vad, speculative=True),
        await bench_endpointing(clips, asr, vad, speculative=False),
    ]
    results["barge_in"] = await bench_barge_in(tts, person, barge_in_trials)
    results["audio_s_per_turn"] = round(
        statistics.mean(len(p) / 2 / AUDIO_SAMPLE_RATE for _, p in clips), 3
    )
    return results


def _print(results: dict[str, Any]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(json.dumps(results, indent=2))
        return
    table = Table(title="speech bench (seconds unless noted)")
    table.add_column("measure")
    table.add_column("median", justify="right")
    table.add_column("max", justify="right")
    asr = results["asr"]
    table.add_row("ASR RTF, short context", *_mm(asr["short_context"]["rtf"]))
    table.add_row("ASR RTF, stock 30 s window", *_mm(asr["full_30s"]["rtf"]))
    table.add_row("TTS RTF (piper joe)", *_mm(results["tts"]["rtf"]))
    table.add_row("TTS first audio after text", *_mm(results["tts"]["first_audio_s"]))
    for ep in results["endpointing"]:
        tag = "speculative ASR" if ep["speculative_asr"] else "ASR after endpoint"
        table.add_row("endpoint after speech end", *_mm(ep["endpoint_after_speech_end_s"]))
        table.add_row(
            f"transcript after speech end ({tag})", *_mm(ep["transcript_after_speech_end_s"])
        )
    table.add_row(
        "barge-in: speech start -> playback stopped", *_mm(results["barge_in"]["reaction_s"])
    )
    Console().print(table)
    print(
        f"ASR WER short {asr['short_context']['wer_mean']:.3f} / full "
        f"{asr['full_30s']['wer_mean']:.3f}; models loaded in {results['load_s']} s"
    )


def _mm(stats: dict[str, float]) -> tuple[str, str]:
    return f"{stats.get('median', float('nan')):.3f}", f"{stats.get('max', float('nan')):.3f}"


def _run(args: argparse.Namespace, config: object = None) -> int:
    """Entry point for `omni-agent bench speech` (the CLI passes its config; unused)."""
    results = asyncio.run(run_speech_bench(args.turns, args.barge_in_trials))
    _print(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def register_bench(bench_subparsers: Any) -> None:
    """Add `speech` to `omni-agent bench`; the parser's `func(args)` runs it."""
    parser = bench_subparsers.add_parser(
        "speech", help="ASR/TTS real-time factors, endpointing and barge-in latency"
    )
    parser.add_argument("--turns", type=int, default=8, help="utterances per measurement")
    parser.add_argument("--barge-in-trials", type=int, default=10)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.set_defaults(func=_run)


def main() -> int:
    parser = argparse.ArgumentParser(prog="omni-agent bench")
    register_bench(parser.add_subparsers(dest="bench", required=True))
    args = parser.parse_args()
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())

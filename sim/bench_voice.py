"""`omni-agent bench speech`: the speech components, then voice-to-voice latency of the
whole embedded stack (VAD, whisper, the llama.cpp brain, piper) in the simulated home.

Voice-to-voice counts from the actual end of the person's voice in the mic stream to the
first robot audio reaching the output, endpointing silence included. Side by side, the
baseline runs the same stages one after another (ASR after the endpoint, speech after the
whole reply), which is what the overlapping design is measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from pathlib import Path
from typing import Any

from omni_agent.agent import Agent
from omni_agent.brain import Brain, open_brain
from omni_agent.config import Config
from omni_agent.speech.bench import LINES, measure_voice_to_voice, run_speech_bench
from omni_agent.speech.bench import _print as print_components
from omni_agent.transport import Bus
from sim.robot import SimRobot
from sim.voice import sim_voice
from sim.world import World

STAGES = ("endpoint", "request_sent", "first_token", "first_speech", "voice_to_voice")


def _median_max(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}


async def _voice_run(config: Config, brain: Brain, turns: int, overlap: bool) -> dict[str, Any]:
    world = World.load()
    bus = Bus()
    robot = SimRobot(world, bus)
    wav = config.sim.out_dir / f"bench-speech-{'overlap' if overlap else 'sequential'}.wav"
    async with sim_voice(bus, wav, brain.profile.audio_in, overlap=overlap) as voice:
        agent = Agent(
            config, bus, robot, brain.client, brain.profile,
            speech=voice.output, site=world.site_map(),
        )  # fmt: skip
        loop = asyncio.create_task(agent.run())
        await agent.ready.wait()
        await agent.warm_up()
        lines = (LINES * (turns // len(LINES) + 1))[:turns]
        try:
            measured = await measure_voice_to_voice(bus, lines, voice.person)
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    for turn in agent.turns:
        for stage, ms in turn.trace.stages_ms().items():
            if stage in stages:
                stages[stage].append(ms / 1000)
    return {
        "turns": len(measured),
        "voice_to_voice_s": _median_max([m["voice_to_voice"] for m in measured]),
        "stages_s": {s: _median_max(v) for s, v in stages.items() if v},
    }


async def run_bench(config: Config, turns: int, baseline_turns: int) -> dict[str, Any]:
    report: dict[str, Any] = {"components": await run_speech_bench(min(turns, 8), 10)}
    async with open_brain(config) as brain:
        report["brain"] = brain.description
        report["overlapped"] = await _voice_run(config, brain, turns, overlap=True)
        if baseline_turns:
            report["sequential_baseline"] = await _voice_run(
                config, brain, baseline_turns, overlap=False
            )
    if "sequential_baseline" in report:
        ours = report["overlapped"]["voice_to_voice_s"]["median"]
        base = report["sequential_baseline"]["voice_to_voice_s"]["median"]
        report["ratio_overlapped_vs_sequential"] = round(ours / base, 2)
    return report


def _run(args: argparse.Namespace) -> int:
    report = asyncio.run(run_bench(args.settings, args.turns, args.baseline_turns))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print_components(report["components"])
    for name in ("overlapped", "sequential_baseline"):
        if name in report:
            run = report[name]
            stages = ", ".join(
                f"{s} {v['median']:.3f}"
                for s, v in run["stages_s"].items()
                if s != "voice_to_voice"
            )
            v2v = run["voice_to_voice_s"]
            print(
                f"{name}: voice-to-voice median {v2v['median']:.3f} s, max {v2v['max']:.3f} s "
                f"over {run['turns']} turns (stage medians, s: {stages})"
            )
    if "ratio_overlapped_vs_sequential" in report:
        print(f"overlapped / sequential: {report['ratio_overlapped_vs_sequential']}x")
    print(f"written to {args.out}")
    return 0


def register_bench(bench_subparsers: Any) -> None:
    parser = bench_subparsers.add_parser(
        "speech", help="ASR/TTS factors, endpointing, barge-in, voice-to-voice latency"
    )
    parser.add_argument("--turns", type=int, default=20, help="spoken turns, overlapped stack")
    parser.add_argument("--baseline-turns", type=int, default=10, help="0 skips the baseline")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-speech.json"))
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run)

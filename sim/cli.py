"""`omni-agent sim` and `omni-agent replay`: composing brain, memory, voice and runner.

omni_agent/cli.py parses the flags and hands over here, so the sim's wiring lives with
the sim and the core CLI stays small.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

from rich.console import Console

from omni_agent.brain import Brain, open_brain
from omni_agent.config import Config
from omni_agent.errors import UserError
from omni_agent.events import EventSink
from sim.scenario import DEFAULT_SCENARIO, Scenario


@contextlib.asynccontextmanager
async def chosen_brain(config: Config, kind: str | None) -> AsyncIterator[Brain]:
    if kind == "scripted":
        from sim.instant_brain import instant_brain

        async with instant_brain(config) as brain:
            yield brain
    elif kind == "omni-double":
        from sim.instant_brain import omni_double_brain

        _check_speech_for_omni_double()
        async with omni_double_brain(config) as brain:
            yield brain
    else:
        async with open_brain(config) as brain:
            if config.model.url and not await brain.client.ready():
                raise UserError(
                    f"model server at {config.model.url} is not answering GET /models: "
                    "is it running, and does --model-url end in /v1?"
                )
            yield brain


def _check_speech_for_omni_double() -> None:
    from sim.voice import speech_unavailable

    if (why := speech_unavailable()) is not None:
        raise UserError(f"--brain omni-double hears and speaks with the speech models: {why}")


def _episode_sinks(
    args: argparse.Namespace, scenario: Scenario, bag_dir: Path, gif: Path
) -> list[EventSink]:
    """Recorders asked for on the command line, one set per episode."""
    sinks: list[EventSink] = []
    if getattr(args, "record", False):
        from sim.recording import McapRecorder

        sinks.append(McapRecorder(bag_dir / f"{scenario.name}-bag", scenario))
    if getattr(args, "view", False):
        from sim.view import EpisodeView

        sinks.append(EpisodeView(gif, scenario.name))
    return sinks


def _close(sinks: list[EventSink], console: Console) -> None:
    for sink in sinks:
        close = getattr(sink, "close", None)
        if close is not None:
            written = close()
            if written:
                console.print(f"[dim]wrote {written}[/]")


def run_sim(config: Config, args: argparse.Namespace, console: Console) -> int:
    speed = args.speed if args.speed else math.inf
    on_ray = getattr(args, "workers", None) or getattr(args, "ray", None)
    if on_ray and not args.all:
        raise UserError("--workers and --ray run the scenario library: add --all")
    if on_ray:
        from sim.ray_library import run_sim_on_ray  # episodes as Ray tasks

        return run_sim_on_ray(config, args, console, speed)
    if args.all:
        return asyncio.run(_run_all(config, args, console, speed))
    return asyncio.run(_run_one(config, args, console, speed))


async def _run_all(config: Config, args: argparse.Namespace, console: Console, speed: float) -> int:
    from sim.library import (
        SPOKEN_VOICE_SPEED,
        load_library,
        omni_double_brains,
        print_library_report,
        run_library,
        scripted_brains,
    )
    from sim.library import shared as shared_brain

    scenarios = load_library()
    out_dir = config.sim.out_dir / f"library-{time.strftime('%Y%m%d-%H%M%S')}"
    all_sinks: list[EventSink] = []

    def hook(scenario: Scenario) -> list[EventSink]:
        sinks = _episode_sinks(args, scenario, out_dir, out_dir / f"{scenario.name}.gif")
        all_sinks.extend(sinks)
        return sinks

    spoken = args.brain == "omni-double"  # the omni path: people speak, the double hears
    mode = "speech (people speak, the omni double hears and speaks)" if spoken else "text mode"
    console.print(f"[bold]Scenario library:[/] {len(scenarios)} scenarios, {mode}")
    started = time.perf_counter()
    if args.brain in ("scripted", "omni-double"):
        if spoken:
            _check_speech_for_omni_double()
        brains = omni_double_brains(config) if spoken else scripted_brains(config)
        results = await run_library(
            config, scenarios, brains, out_dir, parallel=args.parallel, speed=speed,
            console=console, episode_hook=hook, spoken=spoken, voice_speed=SPOKEN_VOICE_SPEED,
        )  # fmt: skip
    else:
        async with chosen_brain(config, None) as brain:
            console.print(f"[dim]brain: {brain.description}[/]")
            started = time.perf_counter()
            results = await run_library(
                config, scenarios, lambda: shared_brain(brain), out_dir,
                parallel=args.parallel, speed=speed, console=console, episode_hook=hook,
            )  # fmt: skip
    wall = time.perf_counter() - started
    print_library_report(results, wall, console)
    _close(all_sinks, console)
    console.print(f"[dim]episode logs and memory files: {out_dir}[/]")
    return 1 if args.strict and not all(r.passed for r in results) else 0


async def _run_one(config: Config, args: argparse.Namespace, console: Console, speed: float) -> int:
    from omni_agent.recall import LongTermMemory, ModelSummarizer
    from omni_agent.transport import Bus
    from sim.clock import SimClock
    from sim.report import TranscriptPrinter, print_summary
    from sim.runner import run_episode
    from sim.voice import sim_voice, speech_unavailable

    scenario = Scenario.load(config.sim.scenario or DEFAULT_SCENARIO)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = config.sim.out_dir / f"episode-{scenario.name}-{stamp}.jsonl"
    console.print(f"[bold]Scenario:[/] {scenario.name}  [dim]starting the model...[/]")
    if args.text:
        no_speech: str | None = "typed lines (--text)"
    elif args.brain == "scripted":
        no_speech = "the scripted brain runs typed lines"
    else:
        no_speech = speech_unavailable()  # the omni double refuses to start without it
    sinks = _episode_sinks(
        args, scenario, log_path.parent / log_path.stem, log_path.with_suffix(".gif")
    )
    bus = Bus()
    clock = SimClock(speed)
    async with chosen_brain(config, args.brain) as brain, contextlib.AsyncExitStack() as stack:
        console.print(f"[dim]brain: {brain.description}[/]")
        summarizer = (
            None
            if args.brain in ("scripted", "omni-double")
            else ModelSummarizer(brain.client, config.model)
        )
        memory = LongTermMemory.open(
            config.memory, log_path.with_suffix(".memory.db"), clock=clock.wall_time,
            summarizer=summarizer,
        )  # fmt: skip
        stack.callback(memory.close)
        voice = None
        if no_speech is None:
            wav = log_path.with_suffix(".robot.wav")
            profile = brain.profile
            voice = await stack.enter_async_context(
                sim_voice(bus, wav, profile.audio_in, audio_out=profile.audio_out)
            )
            console.print(f"[dim]speech: people speak, robot voice -> {wav}[/]")
        else:
            console.print(f"[dim]speech off: {no_speech}[/]")
        printer = None if args.quiet else TranscriptPrinter(console)
        result = await run_episode(
            config, scenario, brain, log_path=log_path, on_event=printer,
            memory=memory, voice=voice, bus=bus, clock=clock, sinks=sinks,
        )  # fmt: skip
    print_summary(result, console)
    _close(sinks, console)
    return 1 if args.strict and not result.passed else 0


def run_replay(config: Config, args: argparse.Namespace, console: Console) -> int:
    from sim.recording import replay_file

    async def main() -> int:
        async with chosen_brain(config, args.brain) as brain:
            report = await replay_file(config, args.file, brain)
        for line in report.lines():
            console.print(line, highlight=False)
        return 0 if report.same_actions else 1

    return asyncio.run(main())

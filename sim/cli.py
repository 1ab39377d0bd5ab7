"""`omni-agent sim` and `omni-agent replay`: composing brain, memory, voice and runner.

`register` adds both commands to `omni-agent` (entry point `omni_agent.commands`), so the
sim's flags and wiring live with the sim and the core CLI knows nothing of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from rich.console import Console

from omni_agent.brain import Brain, open_brain
from omni_agent.config import Config
from omni_agent.errors import UserError
from omni_agent.events import EventSink
from sim.clock import SimClock
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
        if _live_available():  # the same channels as --live, ready for the shipped layout
            from sim.live import SimLiveView

            sinks.append(SimLiveView.recording(bag_dir / f"{scenario.name}-foxglove.mcap"))
    if getattr(args, "view", False):
        from sim.view import EpisodeView

        sinks.append(EpisodeView(gif, scenario.name))
    return sinks


def _live_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("foxglove") is not None


def _close(sinks: list[EventSink], console: Console) -> None:
    for sink in sinks:
        close = getattr(sink, "close", None)
        if close is not None:
            written = close()
            if written:
                console.print(f"[dim]wrote {written}[/]")


def writable_dir(path: Path, what: str) -> None:
    """Make `path` (a folder the run writes into) or say in one line why it cannot be."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        raise UserError(f"{what} {path} is not writable: {exc.strerror or exc}") from None


def check_sim_args(config: Config, args: argparse.Namespace) -> None:
    """Arguments checked before any model starts: each mistake is one line, exit 2."""
    if args.speed is not None and not (math.isfinite(args.speed) and args.speed > 0):
        raise UserError(f"--speed must be a positive number of simulated seconds, got {args.speed}")
    if args.parallel < 1:
        raise UserError(f"--parallel must be at least 1, got {args.parallel}")
    writable_dir(config.sim.out_dir, "--out (sim.out_dir)")
    if getattr(args, "echo", None) is not None:
        from omni_agent.speech.voices import EchoPath

        EchoPath.parse(args.echo)  # a bad spec is one line, before anything starts
        config.sim.echo = args.echo


def run_sim(config: Config, args: argparse.Namespace, console: Console) -> int:
    check_sim_args(config, args)
    live = getattr(args, "live", False)
    if live and args.all:
        raise UserError("--live shows one episode: leave out --all (or use --record for each)")
    # live, the world moves in real time by default, so there is something to watch
    speed = args.speed if args.speed else (1.0 if live else math.inf)
    if getattr(args, "speaker_id", False) and (args.all or args.text or args.brain == "scripted"):
        raise UserError("--speaker-id needs a spoken episode: leave out --all, --text and "
                        "--brain scripted")  # fmt: skip
    if getattr(args, "json", False):
        if not args.all:
            raise UserError("--json goes with --all (one episode writes its log as JSON lines)")
        console = Console(stderr=True)  # stdout carries the JSON report alone
    if getattr(args, "via", "process") == "ros":
        return _run_via_ros(config, args)
    on_ray = getattr(args, "workers", None) or getattr(args, "ray", None)
    if on_ray and not args.all:
        raise UserError("--workers and --ray run the scenario library: add --all")
    if on_ray:
        from sim.ray_library import run_sim_on_ray  # episodes as Ray tasks

        return run_sim_on_ray(config, args, console, speed)
    if args.all:
        return asyncio.run(_run_all(config, args, console, speed))
    return asyncio.run(_run_one(config, args, console, speed))


def _run_via_ros(config: Config, args: argparse.Namespace) -> int:
    """The library (or one scenario) through agent_node, sim_bridge and action_node."""
    from sim.library import library_paths
    from sim.ros_library import run_via_ros

    if args.brain != "scripted":
        raise UserError("--via ros runs the instant brain: add --brain scripted")
    if not args.all and args.scenario is None:
        raise UserError("--via ros needs --all or --scenario FILE")
    if args.scenario is not None and not args.scenario.is_file():
        raise UserError(f"--scenario {args.scenario}: no such file")
    paths = library_paths() if args.all else [args.scenario]
    out_dir = config.sim.out_dir / f"ros-library-{time.strftime('%Y%m%d-%H%M%S')}"
    code = run_via_ros(config, paths, out_dir, getattr(args, "json", False))
    return 0 if code == 1 and not args.strict else code  # 1: an expectation failed


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
    _close(all_sinks, console)
    if getattr(args, "json", False):
        from sim.library import library_report

        report = library_report(results, wall)
        report["out_dir"] = str(out_dir)
        print(json.dumps(report, indent=2))
    else:
        print_library_report(results, wall, console)
        console.print(f"[dim]episode logs and memory files: {out_dir}[/]")
    return 1 if args.strict and not all(r.passed for r in results) else 0


async def _run_one(config: Config, args: argparse.Namespace, console: Console, speed: float) -> int:
    from omni_agent.runtime import open_memory
    from omni_agent.transport import Bus
    from sim.report import TranscriptPrinter, print_summary
    from sim.runner import run_episode
    from sim.voice import echo_path, sim_voice, speech_unavailable

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
    if getattr(args, "live", False):
        sinks.append(await _live_view(args, console, clock))
    async with chosen_brain(config, args.brain) as brain, contextlib.AsyncExitStack() as stack:
        console.print(f"[dim]brain: {brain.description}[/]")
        scripted = args.brain in ("scripted", "omni-double")  # nothing worth summarizing with
        memory = open_memory(
            config, log_path.with_suffix(".memory.db"), clock=clock.wall_time,
            summarizer_brain=None if scripted else brain,
        )  # fmt: skip
        stack.callback(memory.close)
        voice = None
        if no_speech is None:
            wav = log_path.with_suffix(".robot.wav")
            speaker = _speaker_id(args, log_path.with_suffix(".memory.db"), console)
            voice = await stack.enter_async_context(
                sim_voice(
                    bus, wav, brain.profile, speaker=speaker,
                    vad=config.endpointing.vad_config(), echo=echo_path(config.sim.echo),
                    listening=config.listening,
                )
            )  # fmt: skip
            console.print(f"[dim]speech: people speak, robot voice -> {wav}[/]")
        else:
            console.print(f"[dim]speech off: {no_speech}[/]")
        printer = None if args.quiet else TranscriptPrinter(console)
        result = await run_episode(
            config, scenario, brain, log_path=log_path, on_event=printer,
            memory=memory, voice=voice, bus=bus, clock=clock, sinks=sinks,
        )  # fmt: skip
    print_summary(result, console)
    if getattr(args, "live", False) and sys.stdin.isatty():
        # the viewer keeps the last map, transcript and camera frame until the person is done
        await asyncio.to_thread(input, "episode over: press Enter to stop the live view ")
    _close(sinks, console)
    return 1 if args.strict and not result.passed else 0


def _speaker_id(args: argparse.Namespace, memory_db: Path, console: Console) -> Any:
    """Speaker identification for a spoken episode (--speaker-id), voiceprints beside its
    memory: people are named by voice, so they must say who they are."""
    if not getattr(args, "speaker_id", False):
        return None
    from omni_agent.runtime import open_speaker_id, voiceprints_path

    path = voiceprints_path(Config(), memory_db)
    console.print(f"[dim]speaker id: people named by voice, voiceprints -> {path}[/]")
    return open_speaker_id(path)


async def _live_view(args: argparse.Namespace, console: Console, clock: SimClock) -> EventSink:
    from omni_agent.live import LiveView
    from sim.live import SimLiveView

    view = LiveView(port=args.live_port, clock=clock.wall_time)
    console.print(f"[bold]Live view:[/] {view.address}", soft_wrap=True)
    console.print(
        "[dim]in Foxglove: Open connection > Foxglove WebSocket > that address; "
        "layout: launch/foxglove-layout.json[/]"
    )
    wait = args.live_wait
    if wait > 0:
        console.print(f"[dim]waiting up to {wait:g} s for a viewer...[/]")
        if await view.wait_for_viewer(wait):
            console.print("[dim]viewer connected[/]")
    return SimLiveView(view)


def check_replay_file(path: Path) -> None:
    """A replay source is a rosbag2 folder or an episode log whose every line is an
    event; anything else is one line, before the brain starts."""
    if path.is_dir():
        if not (path / "metadata.yaml").is_file():
            raise UserError(f"{path} is a folder without metadata.yaml: not a rosbag2 recording")
        return
    if not path.is_file():
        raise UserError(f"recording not found: {path}")
    if path.suffix != ".jsonl":
        raise UserError(f"{path} is neither a rosbag2 folder nor an episode log (.jsonl)")
    n = 0
    try:
        with path.open("rb") as fh:
            for raw in fh:
                n += 1
                event = json.loads(raw.decode("utf-8"))
                if not (isinstance(event, dict) and {"kind", "data", "stamp"} <= event.keys()):
                    raise ValueError("not an event (kind, data, stamp)")
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError too
        what = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}:{n}: not an episode log line ({what[:80]})") from None
    except OSError as exc:
        raise UserError(f"{path} cannot be read: {exc.strerror or exc}") from None


def run_replay(config: Config, args: argparse.Namespace, console: Console) -> int:
    from sim.recording import replay_file

    check_replay_file(args.file)

    async def main() -> int:
        async with chosen_brain(config, args.brain) as brain:
            report = await replay_file(config, args.file, brain)
        for line in report.lines():
            console.print(line, highlight=False)
        return 0 if report.same_actions else 1

    return asyncio.run(main())


def register(commands: Any) -> None:
    """Add `omni-agent sim` and `omni-agent replay`."""
    sim = commands.add_parser("sim", help="run a simulated conversation with the robot")
    sim.add_argument("--scenario", type=Path, help="scenario YAML (default: the first visit)")
    sim.add_argument("--out", type=Path, help="where episode logs go (default: sim.out_dir)")
    sim.add_argument("--quiet", action="store_true", help="summary only, no live transcript")
    sim.add_argument("--text", action="store_true", help="typed lines instead of speech")
    sim.add_argument(
        "--strict", action="store_true", help="exit with status 1 if an expectation fails"
    )
    sim.add_argument("--all", action="store_true", help="run the whole scenario library")
    sim.add_argument(
        "--via", choices=["process", "ros"], default="process",
        help="ros: run through agent_node, sim_bridge and action_node on real ROS 2 topics, "
        "in a private network namespace (docs/ros2.md; needs --brain scripted)",
    )  # fmt: skip
    sim.add_argument("--parallel", type=int, default=1, metavar="N", help="episodes at once")
    sim.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="with --all: run each episode in its own process on a local Ray with N CPUs",
    )  # fmt: skip
    sim.add_argument("--ray", metavar="ADDRESS", help="with --all: run on this Ray cluster")
    sim.add_argument("--seeds", type=int, default=1, metavar="K", help="with --workers: K seeds")
    sim.add_argument(
        "--matrix", type=Path, metavar="FILE",
        help="with --workers: variants, YAML name: {section.field: value, brain: KIND}",
    )  # fmt: skip
    sim.add_argument(
        "--episode-timeout", type=float, default=None, metavar="S",
        help="with --workers: an episode still running after S seconds is reported (300)",
    )  # fmt: skip
    sim.add_argument(
        "--brain", choices=["embedded", "scripted", "omni-double"], default=None,
        help="scripted: an instant rule-based brain; omni-double: the same rules behind a "
        "double of an omni server that hears and speaks (default: --model-url or embedded)",
    )  # fmt: skip
    sim.add_argument(
        "--speed", type=float, default=None, metavar="X",
        help="simulated seconds per real second while the world waits (default: no waiting)",
    )  # fmt: skip
    sim.add_argument(
        "--record", action="store_true", help="write each episode as a rosbag2 (MCAP) directory"
    )
    sim.add_argument(
        "--view", action="store_true", help="write a GIF of the episode next to its log"
    )
    sim.add_argument(
        "--live", action="store_true",
        help="serve the episode live to Foxglove (WebSocket on 127.0.0.1, see docs/live.md)",
    )  # fmt: skip
    sim.add_argument(
        "--live-port", type=int, default=8765, metavar="PORT", help="port for --live (0: any)"
    )
    sim.add_argument(
        "--live-wait", type=float, default=30.0, metavar="S",
        help="with --live: wait up to S seconds for a viewer before starting (0: start at once)",
    )  # fmt: skip
    sim.add_argument(
        "--json", action="store_true", help="with --all: print the library report as JSON"
    )
    sim.add_argument(
        "--echo", metavar="GAIN_DB[,DELAY_MS]",
        help="spoken episodes: the mic also hears the robot's voice, this loud relative to "
        "its playback and this late (default 40 ms), e.g. -6 or -6,40 (sim.echo)",
    )  # fmt: skip
    sim.add_argument(
        "--speaker-id", action="store_true",
        help="spoken episodes: name each person by voice, not by the script (docs/speech.md)",
    )  # fmt: skip
    sim.set_defaults(func=cmd_sim)

    replay = commands.add_parser("replay", help="feed a recorded episode back into the agent")
    replay.add_argument(
        "file", type=Path, help="an episode recording (rosbag2 directory) or log (.jsonl)"
    )
    replay.add_argument("--brain", choices=["embedded", "scripted"], default="scripted")
    replay.set_defaults(func=cmd_replay)


def cmd_sim(args: argparse.Namespace) -> int:
    config: Config = args.settings
    return run_sim(config, args, Console())


def cmd_replay(args: argparse.Namespace) -> int:
    return run_replay(args.settings, args, Console())

"""The scenario library: run every scenario (side by side if asked) and report a table.

Each episode gets its own simulated clock and its own memory file, so episodes never see
each other. With the instant brain (or the omni double) each episode also gets its own
scripted server (a server failure in one episode must not break another's stream); a real
brain is shared. Spoken episodes (the omni double's path) get their own speech stack too.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from omni_agent.brain import Brain
from omni_agent.config import Config
from omni_agent.events import EventSink
from omni_agent.runtime import open_memory
from omni_agent.transport import Bus
from sim.clock import SimClock
from sim.runner import Check, EpisodeResult, run_episode
from sim.scenario import SCENARIOS_DIR, Scenario

BrainFactory = Callable[[], AbstractAsyncContextManager[Brain]]

SPOKEN_VOICE_SPEED = 3.0
"""Spoken library episodes play people's and the robot's audio at 3x real time:
endpointing counts samples, so the agent hears the same words and pauses, in a third of
the wall time."""


def library_paths(directory: Path = SCENARIOS_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


@contextlib.asynccontextmanager
async def shared(brain: Brain) -> AsyncIterator[Brain]:
    """One brain for every episode (a real model server)."""
    yield brain


async def run_scenario(
    config: Config,
    scenario: Scenario,
    brain: Brain,
    out_dir: Path,
    *,
    speed: float = float("inf"),
    on_event: EventSink | None = None,
    sinks: list[EventSink] | None = None,
    log: bool = True,
    spoken: bool = False,
    voice_speed: float = 1.0,
) -> EpisodeResult:
    """One episode with a fresh memory file under `out_dir` and a fresh clock; `spoken`:
    people speak into the mic and the robot is heard (sim/voice.py), at `voice_speed`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    db = out_dir / f"{scenario.name}.memory.db"
    for stale in out_dir.glob(f"{scenario.name}.memory.db*"):
        stale.unlink()
    clock = SimClock(speed)
    memory = open_memory(config, db, clock=clock.wall_time)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(memory.close)
        bus, voice = None, None
        if spoken:
            from sim.voice import echo_path, sim_voice

            bus = Bus()
            wav = out_dir / f"{scenario.name}.robot.wav"
            voice = await stack.enter_async_context(
                sim_voice(
                    bus,
                    wav,
                    brain.profile,
                    speed=voice_speed,
                    vad=config.endpointing.vad_config(),
                    echo=echo_path(config.sim.echo),
                    listening=config.listening,
                )
            )
        return await run_episode(
            config, scenario, brain, memory=memory, clock=clock, on_event=on_event,
            sinks=sinks, log_path=out_dir / f"{scenario.name}.jsonl" if log else None,
            voice=voice, bus=bus,
        )  # fmt: skip


async def run_library(
    config: Config,
    scenarios: list[Scenario],
    brains: BrainFactory,
    out_dir: Path,
    *,
    parallel: int = 1,
    speed: float = float("inf"),
    console: Console | None = None,
    episode_hook: Callable[[Scenario], list[EventSink]] | None = None,
    spoken: bool = False,
    voice_speed: float = 1.0,
) -> list[EpisodeResult]:
    """Run the scenarios, `parallel` at a time, in one event loop; results in input order.
    `spoken` and `voice_speed`: as for run_scenario."""
    gate = asyncio.Semaphore(max(1, parallel))
    results: dict[int, EpisodeResult] = {}
    progress = Progress(
        TextColumn("[bold]sim[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"), console=console or Console(stderr=True),
        # a bar only where someone watches it: piped into a log it is a heap of frames
        disable=console is None or not console.is_terminal, transient=True,
    )  # fmt: skip

    async def one(i: int, scenario: Scenario, task: Any) -> None:
        async with gate, brains() as brain:
            sinks = episode_hook(scenario) if episode_hook else None
            try:
                results[i] = await run_scenario(
                    config,
                    scenario,
                    brain,
                    out_dir,
                    speed=speed,
                    sinks=sinks,
                    spoken=spoken,
                    voice_speed=voice_speed,
                )
            except TimeoutError as exc:  # a stuck agent fails its episode, not the library
                stuck = Check("the episode runs to its end", False, str(exc))
                results[i] = EpisodeResult(scenario.name, [], [stuck], [], None)
        progress.update(task, advance=1, description=scenario.name)

    with progress:
        task = progress.add_task("", total=len(scenarios))
        await asyncio.gather(*(one(i, s, task) for i, s in enumerate(scenarios)))
    return [results[i] for i in range(len(scenarios))]


def summary(results: list[EpisodeResult], wall_s: float) -> dict[str, Any]:
    met = sum(r.expectations_met[0] for r in results)
    total = sum(r.expectations_met[1] for r in results)
    probes_ok = sum(r.memory_probes[0] for r in results)
    probes = sum(r.memory_probes[1] for r in results)
    sim_s = sum(r.sim_s for r in results)
    done = [s for r in results for t in r.turns if (s := t.trace.stages_ms().get("done"))]
    return {
        "episodes": len(results),
        "passed": sum(r.passed for r in results),
        "expectations_met": met,
        "expectations": total,
        "memory_probe_accuracy": round(probes_ok / probes, 3) if probes else None,
        "memory_probes": probes,
        "safety_violations": sum(len(r.violations) for r in results),
        "turns": sum(len(r.turns) for r in results),
        "sim_s": round(sim_s, 1),
        "wall_s": round(wall_s, 3),
        "sim_speed_x": round(sim_s / wall_s, 1) if wall_s else None,
        "episodes_per_min": round(60 * len(results) / wall_s, 1) if wall_s else None,
        "turn_done_median_ms": round(statistics.median(done), 1) if done else None,
    }


COLUMNS = ("scenario", "result", "expect", "memory", "violations", "turns", "days",
           "sim s", "wall s", "speed", "done p50 ms")  # fmt: skip


def library_report(results: list[EpisodeResult], wall_s: float) -> dict[str, Any]:
    """The library run for machines (`sim --all --json`): the summary and one row per episode."""
    episodes = []
    for r in results:
        met, total = r.expectations_met
        ok, probes = r.memory_probes
        episodes.append(
            {
                "scenario": r.scenario,
                "passed": r.passed,
                "expectations_met": met,
                "expectations": total,
                "memory_probes_ok": ok,
                "memory_probes": probes,
                "violations": list(r.violations),
                "failed": [f"{c.description} ({c.detail})" for c in r.checks if not c.passed],
                "turns": len(r.turns),
                "days": r.days,
                "sim_s": round(r.sim_s, 1),
                "wall_s": round(r.wall_s, 3),
                "turn_done_ms": r.latency_stats_ms("done") or None,
                "log": str(r.log_path) if r.log_path else None,
            }
        )
    return {"summary": summary(results, wall_s), "episodes": episodes}


def print_library_report(results: list[EpisodeResult], wall_s: float, console: Console) -> None:
    from sim.report import print_table

    rows: list[list[str] | None] = []
    for r in results:
        met, total = r.expectations_met
        ok, probes = r.memory_probes
        lat = r.latency_stats_ms("done")
        rows.append(
            [
                r.scenario,
                "[green]pass[/]" if r.passed else "[red]FAIL[/]",
                f"{met}/{total}",
                f"{ok}/{probes}" if probes else "-",
                str(len(r.violations)) if not r.violations else f"[red]{len(r.violations)}[/]",
                str(len(r.turns)),
                str(r.days),
                f"{r.sim_s:.0f}" if r.sim_s else "-",  # no simulated clock (via ROS)
                f"{r.wall_s:.2f}",
                f"{r.sim_s / r.wall_s:.0f}x" if r.wall_s and r.sim_s else "-",
                f"{lat['median']:.0f}" if lat else "-",
            ]
        )
    s = summary(results, wall_s)
    acc = s["memory_probe_accuracy"]
    rows.append(None)
    rows.append(
        [
            f"all {s['episodes']}",
            f"{s['passed']}/{s['episodes']}",
            f"{s['expectations_met']}/{s['expectations']}",
            f"{acc:.0%}" if acc is not None else "-",
            str(s["safety_violations"]),
            str(s["turns"]),
            "",
            f"{s['sim_s']:.0f}" if s["sim_s"] else "-",
            f"{s['wall_s']:.2f}",
            f"{s['sim_speed_x']:.0f}x" if s["sim_speed_x"] else "-",
            f"{s['turn_done_median_ms']:.0f}" if s["turn_done_median_ms"] else "-",
        ]
    )
    print_table(console, "Scenario library", COLUMNS, rows, right=COLUMNS[1:])
    for r in results:
        for c in r.checks:
            if not c.passed:
                console.print(f"[red]FAIL[/] {r.scenario}: {c.description} [dim]({c.detail})[/]")
        for v in r.violations:
            console.print(f"[red]VIOLATION[/] {r.scenario}: {v}")


def load_library(paths: list[Path] | None = None) -> list[Scenario]:
    return [Scenario.load(p) for p in (paths or library_paths())]


def scripted_brains(config: Config) -> BrainFactory:
    from sim.instant_brain import instant_brain

    def factory() -> AbstractAsyncContextManager[Brain]:
        return instant_brain(config)

    return factory


def omni_double_brains(config: Config) -> BrainFactory:
    """An omni double per episode, like the instant brain's scripted servers."""
    from sim.instant_brain import omni_double_brain

    def factory() -> AbstractAsyncContextManager[Brain]:
        return omni_double_brain(config)

    return factory

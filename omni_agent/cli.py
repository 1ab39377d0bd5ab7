"""`omni-agent`: the command line, and the one place that composes the packages.

Errors a user can meet (bad config, missing model, server down, bad scenario) end the
program with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memory.store import StoreError
from omni_agent.config import Config, load_config, parse_override
from omni_agent.errors import UserError

log = logging.getLogger("omni_agent")

# Packages that add their own commands; each exposes `register(subparsers)` or
# `register_bench(bench_subparsers)` whose parsers set `func(args) -> int`, and is skipped
# when its extra is not installed.
COMMAND_PLUGINS = ["memory.cli", "ros_nodes.run", "serve.cli"]
BENCH_PLUGINS = [
    "bench.memory",
    "bench.speech",
    "sim.bench_sim",
    "ros_nodes.bench",
    "serve.bench",
    "bench.faults",
    "bench.safety",
    "bench.speaker",
    "bench.turns",
    "bench.fleet",
]


def _plugins(modules: list[str], attr: str) -> list[Callable[[Any], None]]:
    found = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            log.debug("plugin %s unavailable: %s", name, exc)
            continue
        hook = getattr(module, attr, None)
        if hook is not None:
            found.append(hook)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omni-agent", description="Embodied, spoken, long-memory robot controller."
    )
    parser.add_argument("--config", type=Path, help="YAML config (see omni_agent/agent.yaml)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
        help="override one config field (repeatable)",
    )  # fmt: skip
    parser.add_argument("--model-url", help="OpenAI-compatible endpoint (.../v1); key from env")
    parser.add_argument("--profile", help="backend profile for --model-url")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)

    sim = commands.add_parser("sim", help="run a simulated conversation with the robot")
    sim.add_argument("--scenario", type=Path, help="scenario YAML (default: the first visit)")
    sim.add_argument("--out", type=Path, help="where episode logs go (default: sim.out_dir)")
    sim.add_argument("--quiet", action="store_true", help="summary only, no live transcript")
    sim.add_argument("--text", action="store_true", help="typed lines instead of speech")
    sim.add_argument(
        "--strict", action="store_true", help="exit with status 1 if an expectation fails"
    )
    sim.add_argument("--all", action="store_true", help="run the whole scenario library")
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

    show = commands.add_parser("config", help="print the effective configuration")
    show.set_defaults(func=cmd_config)

    bench = commands.add_parser("bench", help="benchmarks")
    benches = bench.add_subparsers(dest="bench", required=True)
    loop = benches.add_parser("loop", help="controller overhead per turn (instant backend)")
    loop.add_argument("--turns", type=int, default=300)
    loop.add_argument("--out", type=Path, default=Path("runs/bench-loop.json"))
    loop.add_argument("--json", action="store_true", help="print the report as JSON")
    loop.set_defaults(func=cmd_bench_loop)
    brain = benches.add_parser("brain", help="answer quality and latency of the brain")
    brain.add_argument("--out", type=Path, default=Path("runs/bench-brain.json"))
    brain.add_argument("--json", action="store_true", help="print the report as JSON")
    brain.set_defaults(func=cmd_bench_brain)
    for register in _plugins(BENCH_PLUGINS, "register_bench"):
        register(benches)
    for register in _plugins(COMMAND_PLUGINS, "register"):
        register(commands)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = dict(parse_override(item) for item in args.set)
    if args.model_url:
        overrides["model.url"] = args.model_url
        overrides.setdefault("model.profile", args.profile or "vllm-omni-thinker")
    elif args.profile:
        overrides["model.profile"] = args.profile
    if getattr(args, "scenario", None):
        overrides["sim.scenario"] = str(args.scenario)
    if getattr(args, "out", None) and args.command == "sim":
        overrides["sim.out_dir"] = str(args.out)
    return load_config(args.config, overrides)


def cmd_config(args: argparse.Namespace) -> int:
    config: Config = args.settings
    import yaml

    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    config: Config = args.settings
    from rich.console import Console

    from sim.cli import run_sim

    return run_sim(config, args, Console())


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sim.cli import run_replay

    return run_replay(args.settings, args, Console())


def cmd_bench_loop(args: argparse.Namespace) -> int:
    config: Config = args.settings
    if args.turns < 1:
        raise UserError(f"--turns must be at least 1, got {args.turns}")
    from sim.bench_loop import run_loop_bench

    report = asyncio.run(run_loop_bench(config, turns=args.turns, out=args.out))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    o = report["overhead_ms"]
    print(
        f"controller overhead per turn over {report['turns']} turns: "
        f"median {o['median']:.3f} ms, p99 {o['p99']:.3f} ms (model time excluded); "
        f"bare client {report['baseline_client_only_ms']['median']:.3f} ms, "
        f"ratio {report['ratio_median_vs_client_only']}x; written to {args.out}"
    )
    return 0


def cmd_bench_brain(args: argparse.Namespace) -> int:
    from sim.bench_brain import run_brain_bench

    report = asyncio.run(run_brain_bench(args.settings, args.out))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    acc = report["accuracy"]
    lat = report["latency_median_ms"]
    print(
        f"{report['model']}: navigation {acc['navigation']:.0%}, "
        f"perception {acc['perception']:.0%}, safety {acc['safety']:.0%} "
        f"({report['unsafe_refused_by_model']} refused by the model, "
        f"{report['unsafe_rejected_by_envelope']} rejected by the envelope, "
        f"{report['safety_violations']} violations); "
        f"schema-valid {report['schema_valid']:.0%}; median first token "
        f"{lat['first_token']:.0f} ms, first words {lat['first_speech']:.0f} ms, "
        f"done {lat['done']:.0f} ms; written to {args.out}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        # every command reads the effective configuration from args.settings
        args.settings = config_from_args(args)
        if not args.verbose:
            logging.getLogger().setLevel(args.settings.log_level)
        return int(args.func(args))
    except (UserError, StoreError) as exc:  # memory cannot import UserError: it has its own
        print(f"omni-agent: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

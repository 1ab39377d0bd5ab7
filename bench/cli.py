"""`omni-agent bench ...`: the benchmarks, added to `omni-agent` through the
`omni_agent.commands` entry point `bench`.

`bench loop` and `bench brain` are defined here; every other bench module registers its
own subcommand with `register_bench(benches)`. A bench whose optional dependencies are
not installed still answers, with one line naming what is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
from pathlib import Path
from typing import Any

from omni_agent.cli import add_unavailable
from omni_agent.config import Config
from omni_agent.errors import UserError

BENCHES = {
    "memory": "bench.memory",
    "speech": "bench.speech",
    "sim": "bench.sim",
    "ros": "bench.ros",
    "serve": "bench.serve",
    "faults": "bench.faults",
    "safety": "bench.safety",
    "speaker": "bench.speaker",
    "turns": "bench.turns",
    "fleet": "bench.fleet",
}
"""Subcommand name -> the module whose `register_bench(benches)` adds it."""


def register(commands: Any) -> None:
    """Add `omni-agent bench` and its subcommands."""
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
    for name, module in BENCHES.items():
        try:
            hook = importlib.import_module(module).register_bench
        except ImportError as exc:
            add_unavailable(benches, name, exc)
            continue
        hook(benches)


def cmd_bench_loop(args: argparse.Namespace) -> int:
    config: Config = args.settings
    if args.turns < 1:
        raise UserError(f"--turns must be at least 1, got {args.turns}")
    from bench.loop import run_loop_bench

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
    from bench.brain import run_brain_bench

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

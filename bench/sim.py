"""`omni-agent bench sim`: how fast the simulation runs the scenario library.

Simulated seconds per wall second and episodes per minute, with the instant rule-based
brain (the harness's own speed: world, clock, agent loop, memory) and optionally with the
configured real brain (`--brain embedded`: what a CI run of the library costs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from omni_agent.config import Config
from sim.library import load_library, run_library, scripted_brains, shared, summary


async def run_sim_bench(
    config: Config, brain: str, parallel: int, rounds: int, out: Path
) -> dict[str, Any]:
    scenarios = load_library()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            started = time.perf_counter()
            if brain == "scripted":
                results = await run_library(
                    config, scenarios, scripted_brains(config), Path(tmp) / str(r),
                    parallel=parallel,
                )  # fmt: skip
            else:
                from omni_agent.brain import open_brain

                async with open_brain(config) as real:
                    started = time.perf_counter()
                    results = await run_library(
                        config, scenarios, lambda: shared(real), Path(tmp) / str(r),
                        parallel=parallel,
                    )  # fmt: skip
            runs.append(summary(results, time.perf_counter() - started))
    best = max(runs, key=lambda s: s["sim_speed_x"] or 0)
    report = {"brain": brain, "parallel": parallel, "rounds": runs, "best": best}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report


def cmd_bench_sim(args: argparse.Namespace) -> int:
    if getattr(args, "workers", None):
        from sim.ray_library import cmd_bench_sim_workers  # the library as Ray tasks

        return cmd_bench_sim_workers(args)
    report = asyncio.run(
        run_sim_bench(args.settings, args.brain, args.parallel, args.rounds, args.out)
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for parallel_label, s in (("best", report["best"]),):
        print(
            f"sim library ({report['brain']} brain, parallel {report['parallel']}, "
            f"{parallel_label} of {len(report['rounds'])}): {s['episodes']} episodes, "
            f"{s['turns']} turns, {s['sim_s']:.0f} simulated s in {s['wall_s']:.2f} s wall = "
            f"{s['sim_speed_x']:.0f}x real time, {s['episodes_per_min']:.0f} episodes/min; "
            f"{s['passed']}/{s['episodes']} passed, memory probes "
            f"{s['memory_probe_accuracy']:.0%}, {s['safety_violations']} violations; "
            f"written to {args.out}"
        )
    return 0


def register_bench(benches: Any) -> None:
    bench = benches.add_parser("sim", help="simulation speed over the scenario library")
    bench.add_argument("--brain", choices=["scripted", "embedded"], default="scripted")
    bench.add_argument("--parallel", type=int, default=1)
    bench.add_argument("--rounds", type=int, default=3)
    bench.add_argument("--out", type=Path, default=Path("runs/bench-sim.json"))
    bench.add_argument(
        "--workers", metavar="N,M", help="local Ray worker counts to compare (e.g. 1,2)"
    )
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.set_defaults(func=cmd_bench_sim)

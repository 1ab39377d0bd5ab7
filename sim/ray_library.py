"""The scenario library on Ray: `omni-agent sim --all --workers N` (or `--ray ADDRESS`).

Why Ray: evaluating behaviour means scenarios x seeds x brains on every change, more
episodes than one process should run; Ray schedules them on a local instance or on an
existing cluster, and we write no scheduler of our own. Each episode runs as one Ray task
in its own worker process, with its own brain, clock and memory file, in a scratch folder;
the task sends back its result and the files it wrote (episode log, memory file), which
the driver puts where `sim --all` puts them today. This works on a cluster without a
shared filesystem. A failed or hung episode (past `--episode-timeout`) becomes a report
line; the other episodes carry on.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console

from omni_agent.config import Config
from omni_agent.errors import UserError
from sim.runner import EpisodeResult

DEFAULT_EPISODE_TIMEOUT_S = 300.0
MAX_FILE_BYTES = 64 * 1024 * 1024  # files a worker sends back (logs, memory files), each


class EpisodeJob(BaseModel):
    """One episode to run: what a Ray task receives (plain data, no live objects)."""

    scenario_path: str
    seed: int | None = None
    out_name: str  # folder under the library's out_dir (one per seed)
    brain: str = "scripted"  # scripted | embedded (a model server: config.model.url)
    speed: float = math.inf
    timeout_s: float = DEFAULT_EPISODE_TIMEOUT_S
    config_json: str
    variant: str = ""  # its name in a matrix file


@dataclass
class EpisodeOutcome:
    """An episode's result, or why there is none (`error`: failed, or timed out)."""

    job: EpisodeJob
    result: EpisodeResult | None
    error: str | None = None
    files: dict[str, bytes] | None = None
    wall_s: float = 0.0

    @property
    def label(self) -> str:
        name = Path(self.job.scenario_path).stem
        if self.job.variant:
            name = f"{self.job.variant}/{name}"
        return name if self.job.seed is None else f"{name} (seed {self.job.seed})"


def run_job(job: EpisodeJob) -> EpisodeOutcome:
    """Run one episode here, in this process (the body of the Ray task)."""
    from sim.scenario import Scenario

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="omni-episode-") as tmp:
        work = Path(tmp)
        try:
            config = Config.model_validate_json(job.config_json)
            if job.seed is not None:
                config = config.model_copy(
                    update={"model": config.model.model_copy(update={"seed": job.seed})}
                )
            scenario = Scenario.load(Path(job.scenario_path))
            result = asyncio.run(
                asyncio.wait_for(_episode(config, scenario, job, work), job.timeout_s)
            )
        except (TimeoutError, asyncio.TimeoutError):
            return EpisodeOutcome(
                job, None, f"timed out after {job.timeout_s:g} s", None,
                time.perf_counter() - started,
            )  # fmt: skip
        except Exception as e:
            last = traceback.extract_tb(e.__traceback__)[-1:]
            where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
            return EpisodeOutcome(
                job, None, f"{type(e).__name__}: {e}{where}", None, time.perf_counter() - started
            )
        files = {
            p.name: p.read_bytes()
            for p in sorted(work.iterdir())
            if p.is_file() and p.stat().st_size <= MAX_FILE_BYTES
        }
        return EpisodeOutcome(job, result, None, files, time.perf_counter() - started)


async def _episode(config: Config, scenario: Any, job: EpisodeJob, work: Path) -> EpisodeResult:
    from sim.library import run_scenario, scripted_brains

    if job.brain == "scripted":
        async with scripted_brains(config)() as brain:
            return await run_scenario(config, scenario, brain, work, speed=job.speed)
    from omni_agent.brain import open_brain

    async with open_brain(config) as brain:
        return await run_scenario(config, scenario, brain, work, speed=job.speed)


def start_ray(address: str | None, workers: int) -> Any:
    """Connect to a cluster at `address`, or start a local Ray with `workers` CPUs."""
    try:
        import ray
    except ImportError as e:
        raise UserError("Ray is not installed: pip install -e '.[fleet]'") from e
    root = str(Path(__file__).resolve().parents[1])
    try:
        if address:
            ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
        else:
            # Workers import this checkout; a small object store (results are small).
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
            ray.init(
                num_cpus=workers, include_dashboard=False, log_to_driver=False,
                object_store_memory=100 * 1024 * 1024, ignore_reinit_error=True,
                runtime_env={"env_vars": {"PYTHONPATH": path}},
            )  # fmt: skip
    except Exception as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot start {where}: {first}") from None
    return ray


def run_jobs(
    jobs: list[EpisodeJob],
    *,
    workers: int = 2,
    address: str | None = None,
    console: Console | None = None,
) -> list[EpisodeOutcome]:
    """Run the episodes as Ray tasks, one CPU each; outcomes in input order.

    A task that is still running well past its own timeout (stuck outside the event loop,
    where `asyncio.wait_for` cannot reach it) is cancelled and reported as timed out.
    """
    try:
        import ray as _ray

        already = _ray.is_initialized()  # a caller's Ray (tests, notebooks) stays up
    except ImportError:
        already = False
    ray = start_ray(address, workers)
    started_here = not already
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_job)
        refs = [task.remote(job) for job in jobs]
        index = {ref: i for i, ref in enumerate(refs)}
        outcomes: dict[int, EpisodeOutcome] = {}
        # Every episode gets its timeout plus a grace once it could have started.
        waves = math.ceil(len(jobs) / max(1, workers))
        longest = max((j.timeout_s for j in jobs), default=0.0)
        deadline = time.monotonic() + waves * (longest + 30.0)
        pending = list(refs)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            done, pending = ray.wait(pending, num_returns=1, timeout=min(left, 5.0))
            for ref in done:
                i = index[ref]
                try:
                    outcomes[i] = ray.get(ref)
                except Exception as e:  # the worker died (killed, out of memory)
                    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    outcomes[i] = EpisodeOutcome(jobs[i], None, f"worker failed: {first}")
                if console is not None:
                    o = outcomes[i]
                    mark = "[red]error[/]" if o.error else "done"
                    console.print(f"[dim]{len(outcomes)}/{len(jobs)} {o.label}: {mark}[/]")
        for ref in pending:
            ray.cancel(ref, force=True)
            i = index[ref]
            outcomes[i] = EpisodeOutcome(jobs[i], None, "timed out (cancelled by the driver)")
        return [outcomes[i] for i in range(len(jobs))]
    finally:
        if started_here:
            ray.shutdown()


def gather(outcomes: list[EpisodeOutcome], out_dir: Path) -> list[EpisodeResult]:
    """Write each episode's files under `out_dir` (as `sim --all` does) and return the
    results, their log paths pointing there."""
    results = []
    for o in outcomes:
        folder = out_dir / o.job.out_name
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in (o.files or {}).items():
            (folder / name).write_bytes(data)
        if o.result is not None:
            log = o.result.log_path
            results.append(replace(o.result, log_path=folder / log.name if log else None))
    return results


def library_jobs(config: Config, paths: list[Path], *, seeds: int, brain: str, speed: float,
                 timeout_s: float) -> list[EpisodeJob]:  # fmt: skip
    """scenarios x seeds; seed k is the configured model seed + k."""
    base = config.model.seed or 0
    config_json = config.model_dump_json()
    jobs = []
    for k in range(seeds):
        seed = None if seeds == 1 else base + k
        out_name = "." if seed is None else f"seed-{seed}"
        for p in paths:
            job = EpisodeJob(scenario_path=str(p.resolve()), seed=seed, out_name=out_name,
                             brain=brain, speed=speed, timeout_s=timeout_s,
                             config_json=config_json)  # fmt: skip
            jobs.append(job)
    return jobs


def load_matrix(path: Path, config: Config, brain: str) -> list[tuple[str, Config, str]]:
    """Variants from a matrix file: `name: {section.field: value, ..., brain: KIND}`.

    Each variant is the effective config with its overrides applied, validated like the
    config itself; a bad file or field is one line naming the variant.
    """
    import yaml
    from pydantic import ValidationError

    from omni_agent.config import _set_dotted

    try:
        tree = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"matrix file not found: {path}") from None
    except yaml.YAMLError as e:
        raise UserError(f"matrix file {path} is not YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(tree, dict) or not tree:
        raise UserError(f"matrix file {path}: expected variants, name: {{section.field: value}}")
    variants = []
    for name, overrides in tree.items():
        if not isinstance(overrides, dict):
            raise UserError(f"matrix {path}: variant {name!r}: expected section.field: value")
        data = config.model_dump(mode="json")
        kind = str(overrides.get("brain", brain))
        if kind not in ("scripted", "embedded"):
            raise UserError(f"matrix {path}: variant {name!r}: brain must be scripted or embedded")
        for key, value in overrides.items():
            if key != "brain":
                _set_dotted(data, str(key), value)
        try:
            variants.append((str(name), Config.model_validate(data), kind))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise UserError(f"matrix {path}: variant {name!r}: {where}: {err['msg']}") from None
    return variants


def run_sim_on_ray(config: Config, args: argparse.Namespace, console: Console,
                   speed: float) -> int:  # fmt: skip
    """`omni-agent sim --all --workers N [--ray ADDRESS] [--seeds K]`."""
    from sim.library import library_paths, print_library_report

    workers = args.workers or 2
    if workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    seeds = getattr(args, "seeds", 1) or 1
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1 (got {seeds})")
    if args.brain not in (None, "scripted", "embedded"):
        raise UserError(f"--brain {args.brain} does not run on Ray yet: use scripted or embedded")
    brain = args.brain or "embedded"
    matrix = getattr(args, "matrix", None)
    variants = load_matrix(matrix, config, brain) if matrix else [("", config, brain)]
    for name, variant, kind in variants:
        if kind != "scripted" and not variant.model.url:
            raise UserError(
                f"{f'variant {name!r}: ' if name else ''}on Ray each worker needs a model "
                "server to talk to: give --model-url (several workers can share one vLLM), "
                "or --brain scripted"
            )
    timeout = float(getattr(args, "episode_timeout", None) or DEFAULT_EPISODE_TIMEOUT_S)
    jobs = []
    for name, variant, kind in variants:
        for job in library_jobs(variant, library_paths(), seeds=seeds, brain=kind,
                                speed=speed, timeout_s=timeout):  # fmt: skip
            if name:  # each variant in its own folder
                job = job.model_copy(update={"out_name": str(Path(name) / job.out_name),
                                             "variant": name})  # fmt: skip
            jobs.append(job)
    out_dir = config.sim.out_dir / f"library-{time.strftime('%Y%m%d-%H%M%S')}"
    where = f"Ray cluster {args.ray}" if args.ray else f"local Ray, {workers} workers"
    console.print(f"[bold]Scenario library:[/] {len(jobs)} episodes on {where}")
    started = time.perf_counter()
    outcomes = run_jobs(jobs, workers=workers, address=args.ray, console=console)
    wall = time.perf_counter() - started
    results = gather(outcomes, out_dir)
    for name, _, _ in variants:
        mine = [o.result for o in outcomes if o.result is not None and o.job.variant == name]
        if mine:
            if name:
                console.print(f"[bold]variant {name}[/]")
            print_library_report(mine, wall, console)
    failed = [o for o in outcomes if o.error]
    for o in failed:
        console.print(f"[red]ERROR[/] {o.label}: {o.error}", highlight=False)
    console.print(f"[dim]episode logs and memory files: {out_dir}[/]")
    ok = not failed and all(r.passed for r in results)
    return 1 if (args.strict and not ok) or (failed and not results) else 0


# -- `omni-agent bench sim --workers 1,2` ---------------------------------------------------


def bench_workers(config: Config, counts: list[int], rounds: int) -> dict[str, Any]:
    """Episodes per minute of the library on a local Ray with each worker count, after a
    warm-up round (worker processes start and import once), against today's in-process
    run (`sim --all`, one event loop) side by side."""
    from sim.library import library_paths, load_library, run_library, scripted_brains

    paths = library_paths()
    jobs = library_jobs(config, paths, seeds=1, brain="scripted", speed=math.inf,
                        timeout_s=DEFAULT_EPISODE_TIMEOUT_S)  # fmt: skip
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        walls = []
        for r in range(rounds):
            started = time.perf_counter()
            asyncio.run(run_library(config, load_library(paths), scripted_brains(config),
                                    Path(tmp) / f"inproc-{r}"))  # fmt: skip
            walls.append(time.perf_counter() - started)
        rows["in-process"] = _rate(len(jobs), walls)
    for n in counts:
        ray = start_ray(None, n)
        try:
            run_jobs(jobs, workers=n)  # warm-up
            walls, failed = [], 0
            for _ in range(rounds):
                started = time.perf_counter()
                outcomes = run_jobs(jobs, workers=n)
                walls.append(time.perf_counter() - started)
                failed += sum(o.error is not None for o in outcomes)
            rows[f"ray-{n}"] = _rate(len(jobs), walls) | {"failed": failed}
        finally:
            ray.shutdown()
    base = rows.get(f"ray-{counts[0]}")
    for n in counts:
        if base is not None:
            rows[f"ray-{n}"]["speedup_vs_ray_1st"] = round(
                base["wall_s_median"] / rows[f"ray-{n}"]["wall_s_median"], 2
            )
    return {"episodes": len(jobs), "rounds": rounds, "brain": "scripted", "runs": rows}


def _rate(episodes: int, walls: list[float]) -> dict[str, Any]:
    import statistics

    med = statistics.median(walls)
    return {"wall_s_median": round(med, 3), "episodes_per_min": round(60 * episodes / med, 1)}


def cmd_bench_sim_workers(args: argparse.Namespace) -> int:
    import json

    try:
        counts = [int(x) for x in str(args.workers).split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        print(f"omni-agent: error: --workers wants counts like 1,2 (got {args.workers!r})")
        return 2
    try:
        report = bench_workers(args.settings, counts, max(1, args.rounds))
    except UserError as e:
        print(f"omni-agent: error: {e}")
        return 2
    out: Path = args.out.with_name(args.out.stem + "-workers.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    if getattr(args, "json", False):
        print(json.dumps(report, indent=2))
        return 0
    print(f"sim library on Ray ({report['episodes']} episodes, scripted brain, "
          f"median of {report['rounds']})     wall s   episodes/min   speed-up")  # fmt: skip
    for name, row in report["runs"].items():
        up = row.get("speedup_vs_ray_1st")
        print(f"  {name:12} {row['wall_s_median']:36.2f} {row['episodes_per_min']:14.1f} "
              f"{'' if up is None else f'{up:9.2f}x'}")  # fmt: skip
    print(f"  written to {out}")
    return 0

"""`omni-agent bench faults`: the hostile model server's catalogue against every profile.

Each row is one fault on one backend profile, driven through the real agent loop on the
simulated robot: the outcome (SAFE_STOP when the server failed, rejected when the model's
reply was unusable, answered), the time from the utterance to that safe state, whether
the agent recovered and answered once the server was good again, and the tracebacks
logged on the way (there must be none). Times are set against two baselines, side by
side: a good turn on the same server, and the reply deadline (`total_timeout_s`) that
bounds the slow faults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.hostile import CATALOGUE, Case, HostileServer
from omni_agent.agent import Agent
from omni_agent.brain import Brain
from omni_agent.config import Config, ModelConfig
from omni_agent.errors import UserError
from omni_agent.events import AgentEvent
from omni_agent.messages import UserUtterance
from omni_agent.model.client import ModelClient
from omni_agent.model.profiles import PROFILES, get_profile
from omni_agent.runtime import build_agent
from omni_agent.state import State
from omni_agent.transport import Bus
from sim.robot import SimRobot
from sim.world import World

RECOVERY_POLL_S = 0.05
"""The agent's poll for a server that is back, shortened here so that the bench measures
the fault handling rather than the poll interval (1 s in the agent)."""
GRACE_S = 10.0
"""A turn or a recovery still running this long past the deadline counts as a hang."""


@dataclass
class Row:
    case: str
    profile: str
    expected: str
    outcome: str
    """safe_stop, rejected, answered; or hang / error when the agent failed the case."""
    to_safe_ms: float | None
    recovered: bool
    tracebacks: int
    executed: int
    detail: str

    @property
    def ok(self) -> bool:
        return self.outcome == self.expected and self.recovered and self.tracebacks == 0


class _Tracebacks(logging.Handler):
    """Counts log records that carry a traceback (log.exception, asyncio's task errors)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.count += 1


@contextlib.contextmanager
def _drill() -> Iterator[None]:
    """No retry warnings over the table (each fault makes some)."""
    client_log = logging.getLogger("omni_agent.model.client")
    level = client_log.level
    client_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        client_log.setLevel(level)


def fault_model(deadline_s: float) -> ModelConfig:
    return ModelConfig(
        connect_timeout_s=min(1.0, deadline_s),
        first_token_timeout_s=deadline_s / 2,
        recovery_poll_s=RECOVERY_POLL_S,
        total_timeout_s=deadline_s,
        retries=1,
        backoff_s=0.05,
    )


async def run_case(server: HostileServer, case: Case, profile: str, model: ModelConfig) -> Row:
    world = World.load()
    bus = Bus()
    robot = SimRobot(world, bus)
    config = Config()
    config.model = model.model_copy(update={"profile": profile})
    client = ModelClient(server.url, config.model)
    safe_at: list[float] = []

    def observe(event: AgentEvent) -> None:
        if event.kind == "state" and event.data["dest"] in (State.SAFE_STOP, State.IDLE):
            safe_at.append(time.perf_counter())

    brain = Brain(client, get_profile(profile), f"hostile server ({profile})")
    agent = build_agent(config, bus, robot, brain, site=world.site_map(), on_event=observe)
    tracebacks = _Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    limit = model.total_timeout_s + GRACE_S
    outcome, detail, executed, to_safe, recovered = "hang", "", 0, None, False
    try:
        server.case = case.name
        started = time.perf_counter()
        try:
            record = await asyncio.wait_for(agent.respond(_utterance()), limit)
        except asyncio.TimeoutError:
            record = None
            detail = f"no safe state within {limit:g} s"
        if record is not None:
            to_safe = round((safe_at[0] - started) * 1000, 1) if safe_at else None
            executed = len(record.executed)
            if agent.machine.state == State.SAFE_STOP:
                outcome, detail = "safe_stop", record.error or ""
            elif record.error is not None:
                outcome, detail = "error", record.error
            elif record.rejected:
                outcome, detail = "rejected", record.rejected[0]
            else:
                outcome = "answered"
        server.case = "good"
        recovered = await _recovers(agent, limit)
    finally:
        logging.getLogger().removeHandler(tracebacks)
        server.case = "good"
        await client.aclose()
    return Row(
        case.name, profile, case.outcome, outcome, to_safe, recovered, tracebacks.count,
        executed, detail[:120],
    )  # fmt: skip


def _utterance() -> UserUtterance:
    return UserUtterance(text="Please stop where you are.", person="Alice")


async def _recovers(agent: Agent, limit: float) -> bool:
    """Back to IDLE once the server is good, and the next turn is a clean answer."""

    async def idle() -> None:
        while agent.machine.state != State.IDLE:
            await asyncio.sleep(RECOVERY_POLL_S)

    try:
        await asyncio.wait_for(idle(), limit)
        record = await asyncio.wait_for(agent.respond(_utterance()), limit)
    except asyncio.TimeoutError:
        return False
    return record is not None and record.error is None and not record.rejected


async def good_turns(server: HostileServer, model: ModelConfig, rounds: int) -> list[float]:
    """The baseline: milliseconds of a good turn, utterance to IDLE, on each profile."""
    times = []
    for profile in sorted(PROFILES):
        for _ in range(rounds):
            row = await run_case(server, CATALOGUE["good"], profile, model)
            if row.to_safe_ms is not None:
                times.append(row.to_safe_ms)
    return times


async def run_faults_bench(
    profiles: list[str], cases: list[str], deadline_s: float, rounds: int, out: Path
) -> dict[str, Any]:
    model = fault_model(deadline_s)
    rows: list[Row] = []
    with _drill():
        async with HostileServer() as server:
            baseline = await good_turns(server, model, rounds)
            for name in cases:
                for profile in profiles:
                    rows.append(await run_case(server, CATALOGUE[name], profile, model))
    fast = [r.to_safe_ms for r in rows if r.to_safe_ms is not None and not _slow(r)]
    slow = [r.to_safe_ms for r in rows if r.to_safe_ms is not None and _slow(r)]
    good_ms = statistics.median(baseline) if baseline else None
    report: dict[str, Any] = {
        "deadline_s": deadline_s,
        "recovery_poll_s": RECOVERY_POLL_S,
        "rows": [asdict(r) | {"ok": r.ok} for r in rows],
        "summary": {
            "rows": len(rows),
            "as_expected": sum(r.ok for r in rows),
            "tracebacks": sum(r.tracebacks for r in rows),
            "hangs": sum(r.outcome == "hang" for r in rows),
            "executed_on_failure": sum(r.executed for r in rows if r.outcome != "answered"),
            "good_turn_median_ms": good_ms,
            "fast_fault_median_ms": statistics.median(fast) if fast else None,
            "slow_fault_median_ms": statistics.median(slow) if slow else None,
            "deadline_ms": deadline_s * 1000,
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report


def _slow(row: Row) -> bool:
    return CATALOGUE[row.case].slow


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def print_report(report: dict[str, Any], out: Path) -> None:
    head = f"{'case':<20} {'profile':<18} {'outcome':<10} {'to safe':>9} recovered traceback"
    print(head)
    print("-" * len(head))
    for r in report["rows"]:
        ms = f"{r['to_safe_ms']:.0f} ms" if r["to_safe_ms"] is not None else "-"
        outcome = {"safe_stop": "SAFE_STOP"}.get(r["outcome"], r["outcome"])
        flag = "" if r["ok"] else f"  <- expected {r['expected']}"
        recovered = "yes" if r["recovered"] else "NO"
        tracebacks = "none" if r["tracebacks"] == 0 else str(r["tracebacks"])
        print(
            f"{r['case']:<20} {r['profile']:<18} {outcome:<10} {ms:>9} {recovered:<9} "
            f"{tracebacks}{flag}"
        )
    s = report["summary"]
    good, fast, slow, deadline = (
        s["good_turn_median_ms"], s["fast_fault_median_ms"], s["slow_fault_median_ms"],
        s["deadline_ms"],
    )  # fmt: skip
    print()
    print(
        f"{s['as_expected']}/{s['rows']} as expected; tracebacks {s['tracebacks']}, hangs "
        f"{s['hangs']}, actions executed on a failed reply {s['executed_on_failure']}"
    )
    print(
        f"median time to safe state: fast faults {_ms(fast)} vs a good turn {_ms(good)} "
        f"({_ratio(fast, good)}); slow faults {_ms(slow)} vs the deadline {_ms(deadline)} "
        f"({_ratio(slow, deadline)})"
    )
    print(f"written to {out}")


def cmd_bench_faults(args: argparse.Namespace) -> int:
    profiles = _choose(args.profiles, sorted(PROFILES), "profile")
    cases = _choose(args.cases, [c for c in CATALOGUE if c != "good"], "case")
    if args.deadline <= 0 or args.rounds < 1:
        raise UserError("--deadline must be > 0 and --rounds at least 1")
    report = asyncio.run(run_faults_bench(profiles, cases, args.deadline, args.rounds, args.out))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, args.out)
    return 0 if report["summary"]["as_expected"] == report["summary"]["rows"] else 1


def _choose(given: str | None, known: list[str], what: str) -> list[str]:
    if not given:
        return known
    chosen = [n.strip() for n in given.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise UserError(f"unknown {what} {unknown[0]!r} (known: {', '.join(known)})")
    return chosen


def register_bench(benches: Any) -> None:
    bench = benches.add_parser(
        "faults", help="hostile model server: every fault on every profile ends safe"
    )
    bench.add_argument("--profiles", help="comma-separated profiles (default: all)")
    bench.add_argument("--cases", help="comma-separated catalogue cases (default: all)")
    bench.add_argument(
        "--deadline", type=float, default=2.0, metavar="S", help="model.total_timeout_s"
    )
    bench.add_argument("--rounds", type=int, default=3, help="good turns per profile (baseline)")
    bench.add_argument("--out", type=Path, default=Path("runs/bench-faults.json"))
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.set_defaults(func=cmd_bench_faults)

"""`omni-agent bench safety`: random action sequences through the envelope and executors.

N random sequences (default 10,000) of 1-4 actions (moves, turns, look_at, navigate_to
a place or a point) from random start poses in the sim world. Every action goes through
the safety envelope; each approved one is driven by the simulated robot, and the
ground truth (the world's rules for the robot's footprint) counts violations, which must
be 0. Reported beside it:
- false rejections: actions rejected for their path although the exact path keeps the
  footprint clear (what the margin costs), as a share of all actions;
- check time per action, p50 and p99;
- the same sequences through the previous envelope (forward-Euler point path, goal-only
  navigate_to), as the baseline side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni_agent.actions import Action, ActionRejected, LookAt, Move, NavigateTo, Turn
from omni_agent.config import Config, SafetyConfig
from omni_agent.errors import UserError
from omni_agent.kinematics import Kinematics
from omni_agent.messages import Pose2D
from omni_agent.safety import SafetyEnvelope, SiteMap
from omni_agent.transport import Bus
from sim.robot import SimRobot, navigate_target
from sim.world import World

GROUND_TRUTH_STEP_S = 0.01
"""Spacing of the exact-path samples that decide whether a rejection was false."""


@dataclass
class Tally:
    actions: int = 0
    approved: int = 0
    path_rejections: int = 0
    false_rejections: int = 0
    violations: int = 0
    centre_violations: int = 0
    """Violations of the robot's centre alone (what the previous envelope modelled)."""
    check_ns: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ns = sorted(self.check_ns) or [0]
        return {
            "actions": self.actions,
            "approved": self.approved,
            "violations": self.violations,
            "centre_violations": self.centre_violations,
            "path_rejections": self.path_rejections,
            "false_rejections": self.false_rejections,
            "false_rejection_share": self.false_rejections / max(1, self.actions),
            "check_us_p50": statistics.median(ns) / 1e3,
            "check_us_p99": ns[min(len(ns) - 1, int(0.99 * len(ns)))] / 1e3,
            "examples": self.examples[:5],
        }


def random_action(rng: random.Random, world: World, limits: SafetyConfig) -> Action:
    kind = rng.random()
    if kind < 0.4:
        return Move(
            linear=rng.uniform(-limits.max_linear_speed, limits.max_linear_speed),
            angular=rng.uniform(-limits.max_angular_speed, limits.max_angular_speed),
            duration=rng.uniform(0.1, limits.max_move_duration_s),
        )
    if kind < 0.5:
        return Turn(degrees=rng.uniform(-360, 360))
    if kind < 0.6:
        return LookAt(target=rng.choice(sorted(world.landmark_poses())))
    if kind < 0.8:
        return NavigateTo(place=rng.choice(sorted(world.places)))
    return NavigateTo(
        x=rng.uniform(-0.5, 11.5),
        y=rng.uniform(-2.0, 7.5),
        yaw=rng.uniform(-math.pi, math.pi),
    )


def random_start(rng: random.Random, world: World, env: SafetyEnvelope) -> Pose2D:
    rooms = [r for r in world.rooms if not any(k.name == r.name for k in world.keepout)]
    while True:
        room = rng.choice(rooms)
        x, y = rng.uniform(room.x_min, room.x_max), rng.uniform(room.y_min, room.y_max)
        if env.zones.point_breach(x, y, env.kinematics.clearance) is None:
            return Pose2D(x=x, y=y, yaw=rng.uniform(-math.pi, math.pi))


def exact_path_safe(world: World, kin: Kinematics, action: Action, pose: Pose2D) -> bool:
    """Ground truth for a rejected action: does its exact path keep the footprint clear?
    navigate_to: is there a route at all with the footprint alone (no margin)?"""
    robot = SimRobot(world, Bus(), start=pose, camera=None, kinematics=_bare(kin))
    if isinstance(action, NavigateTo):
        target = navigate_target(world, action)
        if world.violation(target.x, target.y, kin.footprint_radius):
            return False
        route = world.route(pose, target, kin.footprint_radius)
        if route is None:
            return False
        traj = kin.navigate(pose, route)
    else:
        traj = robot.plan(action)  # type: ignore[assignment]
        if traj is None:
            return False
    return all(
        world.violation(p.x, p.y, kin.footprint_radius) is None
        for p in traj.sample(GROUND_TRUTH_STEP_S)
    )


def _bare(kin: Kinematics) -> Kinematics:
    return Kinematics(
        footprint_radius=kin.footprint_radius,
        margin=0.0,
        navigate_speed=kin.navigate_speed,
        turn_speed=kin.turn_speed,
    )


class LegacyEnvelope:
    """The envelope before the shared motion model (for the side-by-side baseline): a
    point robot, forward-Euler move paths at 0.1 s, navigate_to checks only the goal."""

    def __init__(self, config: SafetyConfig, site: SiteMap) -> None:
        self.config, self.site = config, site

    def check(self, action: Action, pose: Pose2D) -> None:
        c = self.config
        if isinstance(action, Move):
            if abs(action.linear) > c.max_linear_speed or abs(action.angular) > c.max_angular_speed:
                raise ActionRejected("move", "speed")
            if action.duration > c.max_move_duration_s:
                raise ActionRejected("move", "duration")
            steps = max(1, math.ceil(abs(action.linear) * action.duration / 0.05))
            steps = max(steps, math.ceil(action.duration * 10))
            dt = action.duration / steps
            x, y, yaw = pose.x, pose.y, pose.yaw
            for _ in range(steps):
                x += action.linear * math.cos(yaw) * dt
                y += action.linear * math.sin(yaw) * dt
                yaw += action.angular * dt
                self._point(x, y)
        elif isinstance(action, NavigateTo):
            if action.place is not None:
                found = {k.lower(): v for k, v in self.site.places.items()}.get(
                    action.place.lower()
                )
                if found is None:
                    raise ActionRejected("navigate_to", "unknown place")
                self._point(found.x, found.y)
            else:
                self._point(action.x or 0.0, action.y or 0.0)

    def _point(self, x: float, y: float) -> None:
        for zone in self.site.keepout:
            if zone.contains(x, y):
                raise ActionRejected("?", "keep-out")
        if self.site.geofence and not any(r.contains(x, y) for r in self.site.geofence):
            raise ActionRejected("?", "geofence")


_LIMIT_WORDS = ("exceeds", "unknown", "allow-list", "full turn")


def run_sequences(
    n: int, seed: int, config: SafetyConfig, legacy: bool
) -> dict[str, dict[str, Any]]:
    world = World.load()
    site = world.site_map()
    env = SafetyEnvelope(config, site)
    old = LegacyEnvelope(config, site)
    kin = env.kinematics
    tallies = {"envelope": Tally(), **({"previous envelope": Tally()} if legacy else {})}
    rng = random.Random(seed)
    for _ in range(n):
        start = random_start(rng, world, env)
        sequence = [random_action(rng, world, config) for _ in range(rng.randint(1, 4))]
        for name, tally in tallies.items():
            robot = SimRobot(world, Bus(), start=start, camera=None, safety=config)
            for action in sequence:
                tally.actions += 1
                pose = robot.pose
                began = time.perf_counter_ns()
                try:
                    if name == "envelope":
                        env.check(action, pose)
                    else:
                        old.check(action, pose)
                except ActionRejected as exc:
                    tally.check_ns.append(time.perf_counter_ns() - began)
                    if name == "envelope" and not any(w in exc.reason for w in _LIMIT_WORDS):
                        tally.path_rejections += 1
                        if exact_path_safe(world, kin, action, pose):
                            tally.false_rejections += 1
                    continue
                tally.check_ns.append(time.perf_counter_ns() - began)
                tally.approved += 1
                asyncio.run(robot.execute(action))
                centre = [world.violation(p.x, p.y) for p in robot.last_path]
                if any(centre):
                    tally.centre_violations += 1
                if robot.violations:
                    tally.violations += 1
                    if len(tally.examples) < 5:
                        tally.examples.append(
                            f"{action.model_dump(exclude_none=True)} from "
                            f"({pose.x:.3f}, {pose.y:.3f}, {pose.yaw:.3f}): {robot.violations[0]}"
                        )
                    robot.violations.clear()
    return {name: t.summary() for name, t in tallies.items()}


def run_safety_bench(
    config: Config, n: int, seed: int, out: Path, legacy: bool = True
) -> dict[str, Any]:
    started = time.perf_counter()
    results = run_sequences(n, seed, config.safety, legacy)
    report = {
        "bench": "safety",
        "sequences": n,
        "seed": seed,
        "footprint_radius_m": config.safety.footprint_radius_m,
        "margin_m": config.safety.margin_m,
        "wall_s": time.perf_counter() - started,
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_bench_safety(args: argparse.Namespace) -> int:
    try:
        report = run_safety_bench(args.settings, args.n, args.seed, args.out, not args.no_baseline)
    except OSError as exc:
        raise UserError(f"cannot write the report to {args.out}: {exc}") from None
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    rows = report["results"]
    names = list(rows)
    print(
        f"safety: {report['sequences']} random sequences, footprint "
        f"{report['footprint_radius_m']:g} m, margin {report['margin_m']:g} m, "
        f"{report['wall_s']:.0f} s"
    )
    print(f"{'':24}" + "".join(f"{name:>20}" for name in names))
    for key, label, fmt in (
        ("actions", "actions", "{:d}"),
        ("approved", "approved", "{:d}"),
        ("violations", "violations (footprint)", "{:d}"),
        ("centre_violations", "violations (centre)", "{:d}"),
        ("false_rejection_share", "false rejections", "{:.2%}"),
        ("check_us_p50", "check p50 (us)", "{:.0f}"),
        ("check_us_p99", "check p99 (us)", "{:.0f}"),
    ):
        cells = "".join(f"{fmt.format(rows[n][key]):>20}" for n in names)
        print(f"{label:24}{cells}")
    if len(names) > 1:
        new, old = rows[names[0]], rows[names[1]]
        ratio = new["check_us_p50"] / max(old["check_us_p50"], 1e-9)
        print(f"check time p50, envelope / previous: {ratio:.1f}x")
    print(f"written to {args.out}")
    return 0 if rows["envelope"]["violations"] == 0 else 1


def register_bench(benches: Any) -> None:
    bench = benches.add_parser("safety", help="random action sequences: violations, cost")
    bench.add_argument("--n", type=_positive, default=10_000, help="sequences (default 10000)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--no-baseline", action="store_true", help="skip the previous envelope")
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.add_argument("--out", type=Path, default=Path("runs/bench-safety.json"))
    bench.set_defaults(func=cmd_bench_safety)

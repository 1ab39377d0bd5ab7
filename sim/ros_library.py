"""The scenario library through the real ROS graph: `omni-agent sim --all --via ros`.

The in-process runner (sim/runner.py) proves the agent loop; this proves the robot path.
Each episode starts sim_bridge (the world, at the scenario's start place) and action_node
(the gate) as processes, and agent_node (sim/ros_host.py: the product's assembly on the
instant brain) once per session: the node is stopped and started again between sessions
and days, over the same memory_db file, so what it recalls on day 3 crossed a restart.
People's lines go in on /user/utterance ({text, person} JSON), the agent's events come
back on /agent/events, and where the robot is comes from sim_bridge's /odom. The same
expectations (sim/runner.check_expectations) grade it and the same table reports it.

Everything runs in a private loopback-only network namespace (ros_nodes/sandbox.py): the
CLI re-runs this module inside one. Time is real here: sessions follow one another at
once (the days are not simulated for memory) and pauses between lines are not waited.
Scenarios that need the in-process simulator's hooks (interruptions timed against the
simulated speaker, an injected server failure, another world) are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omni_agent.actions import ActionResult
from omni_agent.events import AgentEvent, EpisodeLog, SimEvent, TurnEnded, event_from_log
from omni_agent.kinematics import checked_kinematics
from omni_agent.messages import Pose2D
from omni_agent.turn import TurnRecord, TurnTrace
from sim.runner import LINE_TIMEOUT_S, EpisodeResult, check_expectations
from sim.scenario import Scenario
from sim.world import World

if TYPE_CHECKING:
    from omni_agent.config import Config

WAIT_S = 120.0
"""Deadline for a node to start, match or stop (model and memory loading on a busy machine);
it only decides how long a broken graph takes to fail."""
HOST = "sim.ros_host:run"


def unsupported(scenario: Scenario) -> str | None:
    """Why the scenario cannot run through the ROS graph, or None if it can."""
    if scenario.world is not None:
        return "another world than the default (sim_bridge and the gate load the default site)"
    if scenario.server_fails_at is not None:
        return "a model server failure is injected in process only"
    if any(line.interrupt_after_s is not None for line in scenario.lines):
        return "interruptions are timed against the in-process simulated speaker"
    return None


class RobotView:
    """Where the simulated robot is and has been, from sim_bridge's odometry: what
    check_expectations reads from SimRobot (place, rooms visited, safety violations)."""

    def __init__(self, world: World, footprint_m: float) -> None:
        self.world = world
        self.footprint_m = footprint_m
        self.pose: Pose2D | None = None
        self.rooms_visited: list[str] = []
        self.violations: list[str] = []
        self.updates = 0

    @property
    def place(self) -> str | None:
        return self.world.place_at(self.pose, within_m=1.5) if self.pose else None

    def update(self, pose: Pose2D) -> None:
        self.pose = pose
        self.updates += 1
        room = self.world.room_at(pose.x, pose.y)
        if room is not None and (not self.rooms_visited or self.rooms_visited[-1] != room.name):
            self.rooms_visited.append(room.name)
        problem = self.world.violation(pose.x, pose.y, self.footprint_m)
        if problem and problem not in self.violations:
            self.violations.append(problem)


def turn_record(event: TurnEnded) -> TurnRecord:
    """The turn as the in-process runner holds it, rebuilt from its TurnEnded event."""
    lat = event.latency_ms
    trace = TurnTrace(utterance=-lat.get("request_sent", 0.0) / 1000, request_sent=0.0)
    if "first_token" in lat:
        trace.first_token = lat["first_token"] / 1000
    if "done" in lat:
        trace.done = lat["done"] / 1000
    return TurnRecord(
        event.index, event.person, event.user, say=event.say, spoken=event.spoken,
        interrupted=event.interrupted, error=event.error, rejected=list(event.rejected),
        executed=[ActionResult(action=a, ok=True) for a in event.executed], trace=trace,
    )  # fmt: skip


class _Graph:
    """The probe node (the people, the e-stop device, the observer) and the node processes."""

    def __init__(self, world: World, footprint_m: float) -> None:
        from geometry_msgs.msg import PoseWithCovarianceStamped  # noqa: F401 (rclpy is up)
        from nav_msgs.msg import Odometry as RosOdometry
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from std_msgs.msg import Bool, Header, String

        from ros_nodes import convert, qos
        from sim.ros_host import READY

        self.node = node = Node("sim_library")
        self.String, self.Bool = String, Bool
        self.view = RobotView(world, footprint_m)
        self.events: list[AgentEvent] = []
        self.states: list[str] = []
        self.gate: list[str] = []
        self.user = node.create_publisher(String, qos.USER_TEXT, qos.COMMAND)
        # the e-stop device: latched state and a heartbeat, as on the robot
        self.estop = node.create_publisher(Bool, qos.ESTOP, qos.ESTOP_STATE)
        beat = node.create_publisher(Header, qos.ESTOP_HEARTBEAT, qos.COMMAND)
        node.create_timer(0.2, lambda: beat.publish(Header()))
        self.events_sub = node.create_subscription(
            String, qos.AGENT_EVENTS, self._on_event, qos.EVENTS
        )
        self.ready: list[str] = []
        node.create_subscription(String, READY, lambda m: self.ready.append(m.data), qos.LATCHED)
        self.state_sub = node.create_subscription(
            String, qos.STATE, lambda m: self.states.append(m.data), qos.LATCHED
        )
        node.create_subscription(
            String, qos.GATE_STATUS, lambda m: self.gate.append(m.data), qos.ESTOP_STATE
        )
        node.create_subscription(
            RosOdometry, qos.ODOM,
            lambda m: self.view.update(convert.from_ros_odometry(m).pose), qos.SENSOR,
        )  # fmt: skip
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(node)
        self.sink: Callable[[AgentEvent], None] | None = None

    def _on_event(self, msg: Any) -> None:
        raw = json.loads(msg.data)
        event = event_from_log(raw["kind"], raw["data"], raw["stamp"])
        self.events.append(event)
        if self.sink is not None:
            self.sink(event)

    def spin_until(
        self,
        done: Callable[[], bool],
        timeout: float,
        what: str,
        why: Callable[[], str] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} in {timeout:g} s" + (f" ({why()})" if why else ""))
            self.executor.spin_once(timeout_sec=0.1)

    def release(self) -> None:
        """Release the e-stop once the gate runs (it starts engaged), and wait for it to open."""
        self.spin_until(lambda: bool(self.gate), WAIT_S, "status from action_node")
        self.estop.publish(self.Bool(data=False))
        self.spin_until(lambda: self.gate[-1] == "open", WAIT_S, "open gate on action_node")

    def say(self, text: str, person: str) -> None:
        self.user.publish(self.String(data=json.dumps({"text": text, "person": person})))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def _command(spec: Any, **params: str) -> list[str]:
    from ros_nodes.graph import params_file

    cmd: list[str] = spec.command(params_file("sim"))
    for name, value in params.items():
        cmd += ["-p", f"{name}:={value}"]
    return cmd


def run_episode_ros(scenario: Scenario, out_dir: Path, config: Config) -> EpisodeResult:
    """One episode through the ROS graph (call inside the sandbox, with rclpy initialised)."""
    from ros_nodes.graph import ACTION, AGENT, SIM, stop_processes

    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    config_file = out_dir / "config.yaml"
    config_file.write_text(json.dumps(config.model_dump(mode="json")))  # JSON is YAML
    db = out_dir / f"{scenario.name}.memory.db"
    for stale in out_dir.glob(f"{scenario.name}.memory.db*"):
        stale.unlink()
    world = World.load()
    log = EpisodeLog(out_dir / f"{scenario.name}.jsonl")
    graph = _Graph(world, checked_kinematics(config.safety).footprint_radius)
    graph.sink = log
    common = {"config_file": str(config_file)}
    start = {"start": scenario.start} if scenario.start else {}
    procs = [
        subprocess.Popen(_command(SIM, **common, **start)),
        subprocess.Popen(_command(ACTION, **common)),
    ]
    agent: subprocess.Popen[bytes] | None = None
    line_turns: list[TurnRecord | None] = []

    def note(text: str, **data: Any) -> None:
        event = SimEvent(text, data)
        graph.events.append(event)
        log(event)

    def stop_agent() -> None:
        if agent is not None:
            stop_processes([agent], timeout_s=WAIT_S)
            if agent.returncode not in (0, -2):
                raise RuntimeError(f"agent_node exited with status {agent.returncode}")
            # all its endpoints are gone before the next one starts: a line is never sent
            # to it, and a state it sent while stopping never passes for the next one's
            graph.spin_until(
                lambda: (
                    graph.user.get_subscription_count() == 0
                    and graph.events_sub.get_publisher_count() == 0
                    and graph.state_sub.get_publisher_count() == 0
                ),
                WAIT_S,
                "agent_node gone",
            )

    def start_agent() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            _command(AGENT, **common, agent=HOST, memory_db=str(db), speech="text")
        )
        # this process says it listens, is localized and is matched to the gate (READY)
        graph.spin_until(
            lambda: (
                (
                    str(proc.pid) in graph.ready
                    and graph.user.get_subscription_count() > 0
                    and graph.events_sub.get_publisher_count() > 0
                )
                or proc.poll() is not None
            ),
            WAIT_S,
            "agent_node ready",
            lambda: (
                f"ready {graph.ready}, "
                f"utterance subscribers {graph.user.get_subscription_count()}, "
                f"event publishers {graph.events_sub.get_publisher_count()}"
            ),
        )
        if proc.poll() is not None:
            raise RuntimeError(f"agent_node exited with status {proc.returncode}")
        return proc

    try:
        graph.spin_until(lambda: graph.view.pose is not None, WAIT_S, "odometry from sim_bridge")
        graph.release()
        session, day, key = 0, 1, None
        for n, line in enumerate(scenario.lines):
            line_day = line.day or day
            line_key = line.session if line.session is not None else key
            if agent is None or line_day > day or line_key != key:
                if agent is not None:
                    stop_agent()
                    session += 1
                day, key = line_day, line_key
                agent = start_agent()
                note(f"day {day}, session {session + 1}: agent_node started", day=day,
                     session=session + 1, pid=agent.pid)  # fmt: skip
            mark = len(graph.events)
            graph.say(line.text, line.person or scenario.person)

            def answer(mark: int = mark) -> TurnEnded | bool | None:
                for e in graph.events[mark:]:
                    if isinstance(e, TurnEnded):
                        return e
                    if e.kind == "note" and "ignored while" in e.data["text"]:
                        return True
                return None

            graph.spin_until(
                lambda: answer() is not None, LINE_TIMEOUT_S, f"answer to line {n + 1}"
            )
            got = answer()
            line_turns.append(turn_record(got) if isinstance(got, TurnEnded) else None)
        # a fresh pose after the last turn: the robot's final place
        seen = graph.view.updates
        graph.spin_until(lambda: graph.view.updates > seen + 1, WAIT_S, "odometry at the end")
    finally:
        try:
            stop_agent()
        finally:
            stop_processes(procs, timeout_s=WAIT_S)
            graph.close()
            log.close()
    turns = [turn_record(e) for e in graph.events if isinstance(e, TurnEnded)]
    states = [str(e.data["dest"]) for e in graph.events if e.kind == "state"]
    return EpisodeResult(
        scenario=scenario.name,
        turns=turns,
        checks=check_expectations(scenario, turns, graph.view, line_turns, states),  # type: ignore[arg-type]
        violations=graph.view.violations,
        final_place=graph.view.place,
        log_path=log.path,
        events=graph.events,
        line_turns=line_turns,
        days=day,
        wall_s=time.perf_counter() - started,
        states=states,
    )


def run_library_ros(
    config: Config, scenarios: list[Scenario], out_dir: Path
) -> tuple[list[EpisodeResult], dict[str, str]]:
    """Every runnable scenario, one after another; returns the results and the skipped
    scenarios with why. A stuck episode fails itself, not the library."""
    import rclpy

    from sim.runner import Check

    results: list[EpisodeResult] = []
    skipped: dict[str, str] = {}
    rclpy.init()
    try:
        for scenario in scenarios:
            why = unsupported(scenario)
            if why is not None:
                skipped[scenario.name] = why
                continue
            try:
                results.append(run_episode_ros(scenario, out_dir, config))
            except (TimeoutError, RuntimeError) as exc:
                stuck = Check("the episode runs to its end through ROS", False, str(exc))
                results.append(EpisodeResult(scenario.name, [], [stuck], [], None))
    finally:
        rclpy.try_shutdown()
    return results, skipped


def main(argv: list[str] | None = None) -> int:
    """Inside the sandbox: run the scenarios given, print the library table (or JSON)."""
    from rich.console import Console

    from omni_agent.config import load_config
    from ros_nodes.sandbox import assert_sandboxed
    from sim.library import library_report, print_library_report

    ap = argparse.ArgumentParser(prog="python -m sim.ros_library")
    ap.add_argument("scenarios", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    assert_sandboxed()
    config = load_config(args.config)
    scenarios = [Scenario.load(p) for p in args.scenarios]
    console = Console(stderr=args.json)
    console.print(f"[bold]Scenario library through ROS:[/] {len(scenarios)} scenarios, text mode")
    started = time.perf_counter()
    results, skipped = run_library_ros(config, scenarios, args.out)
    wall = time.perf_counter() - started
    if args.json:
        report = library_report(results, wall)
        report["skipped"] = skipped
        report["out_dir"] = str(args.out)
        print(json.dumps(report, indent=2))
    else:
        print_library_report(results, wall, console)
        for name, why in skipped.items():
            console.print(f"[yellow]skipped[/] {name}: {why}")
        console.print(f"[dim]episode logs and memory files: {args.out}[/]")
    return 0 if all(r.passed for r in results) else 1


def run_via_ros(config: Config, paths: list[Path], out_dir: Path, as_json: bool) -> int:
    """From the CLI: run `main` in a private network namespace (exit 1 if one can't be made)."""
    from omni_agent.errors import UserError
    from ros_nodes.sandbox import sandbox_env, sandboxed, unavailable_reason

    try:
        import rclpy  # noqa: F401
    except ImportError:
        raise UserError("--via ros needs rclpy: pip install 'omni-agent[ros]'") from None
    reason = unavailable_reason()
    if reason is not None:
        raise UserError(f"cannot run ROS here safely: {reason}")
    out_dir.mkdir(parents=True, exist_ok=True)
    config_file = out_dir / "config.yaml"
    config_file.write_text(json.dumps(config.model_dump(mode="json")))
    cmd = [sys.executable, "-m", "sim.ros_library", *map(str, paths), "--out", str(out_dir)]
    cmd += ["--config", str(config_file)] + ["--json"] * as_json
    env = sandbox_env()
    root = str(Path(__file__).resolve().parent.parent)  # the nodes import sim/ and ros_nodes/
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    return subprocess.call(sandboxed(cmd), env=env)


if __name__ == "__main__":
    raise SystemExit(main())

"""Runs inside the private network namespace: starts the ROS nodes, probes them, reports.

Usage (from tests/ros/test_ros_graph.py only): python graph_worker.py SCENARIO [TMPDIR]
Starts action_node and agent_node (with the scripted host) as processes, then drives
them from an in-process probe node and prints one JSON object on the last stdout line.
Waits are on events (subscription matching, the agent's readiness, messages arriving),
never fixed sleeps, each with a deadline sized for a loaded 2-core machine (WAIT_S): a
deadline only decides how long a broken graph takes to fail, never whether a slow one
passes. Nodes get as long to stop on SIGINT, so a slow shutdown is not killed (-9).
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped, Twist
from nav_msgs.msg import Odometry as RosOdometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from scripted_host import READY_TOPIC
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Header, Int16MultiArray, MultiArrayDimension, String

from omni_agent.messages import AudioChunk, Pose2D
from ros_nodes import convert, qos
from ros_nodes.graph import ACTION, AGENT, SIM, params_file, stop_processes
from ros_nodes.sandbox import assert_sandboxed

HERE = Path(__file__).resolve().parent
RATE = 16_000
WAIT_S = 30.0
"""Deadline for any one event (both cores may be busy with other work)."""


def voiced(seconds: float) -> bytes:
    """A vowel-like harmonic signal that webrtcvad takes for speech."""
    t = np.arange(int(RATE * seconds)) / RATE
    phase = 2 * np.pi * np.cumsum(140 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / RATE
    sig = sum(
        (1 / k) * np.sin(k * phase) * (1 + 0.5 * np.sin(2 * np.pi * (500 / k) * t))
        for k in range(1, 20)
    )
    return (sig / np.abs(sig).max() * 12000).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(2 * int(RATE * seconds))


class Probe(Node):
    """Drives the graph as the outside world does. It is also the e-stop device (latched
    state, heartbeat every 0.2 s while `beating`) and, unless `localize` is off (the sim
    graph has its own), the localizer: a map-frame pose at the origin."""

    def __init__(self, localize: bool = True) -> None:
        super().__init__("test_probe")
        self.camera = self.create_publisher(Image, qos.CAMERA, qos.SENSOR)
        self.mic = self.create_publisher(Int16MultiArray, qos.MIC, qos.SENSOR)
        self.estop = self.create_publisher(Bool, qos.ESTOP, qos.ESTOP_STATE)
        self.beat = self.create_publisher(Header, qos.ESTOP_HEARTBEAT, qos.COMMAND)
        self.beating = True
        self.localizer = self.create_publisher(PoseWithCovarianceStamped, qos.LOCALIZATION, 10)
        self.localize = localize
        self.map_pose = Pose2D(x=0.0, y=0.0)
        self.create_timer(0.2, self._tick)
        self.agent_cmd = self.create_publisher(Twist, qos.AGENT_CMD_VEL, qos.COMMAND)
        self.agent_goal = self.create_publisher(PoseStamped, qos.AGENT_GOAL, qos.COMMAND)
        self.user = self.create_publisher(String, qos.USER_TEXT, qos.COMMAND)
        self.cmd: list[tuple[float, float, float]] = []
        self.goals: list[PoseStamped] = []
        self.speech: list[str] = []
        self.states: list[str] = []
        self.gate: list[str] = []
        self.agent_status: list[str] = []
        self.create_subscription(String, READY_TOPIC, self._on_ready, qos.LATCHED)
        self.subs = [
            self.create_subscription(
                Twist,
                qos.CMD_VEL,
                lambda m: self.cmd.append((time.monotonic(), m.linear.x, m.angular.z)),
                10,
            ),
            self.create_subscription(PoseStamped, qos.GOAL_POSE, self.goals.append, qos.COMMAND),
            self.create_subscription(
                String, qos.SPEECH_TEXT, lambda m: self.speech.append(m.data), qos.COMMAND
            ),
            self.create_subscription(
                String, qos.STATE, lambda m: self.states.append(m.data), qos.LATCHED
            ),
            self.create_subscription(
                String, qos.GATE_STATUS, lambda m: self.gate.append(m.data), qos.ESTOP_STATE
            ),
        ]
        self.executor_ = SingleThreadedExecutor()
        self.executor_.add_node(self)

    def _on_ready(self, msg: String) -> None:
        self.agent_status.append(msg.data)

    def _tick(self) -> None:
        if self.beating:
            self.beat.publish(Header())
        if self.localize:
            self.localizer.publish(convert.to_ros_localization(self.map_pose))

    def release(self) -> None:
        """Release the e-stop and wait for the gate to open (it starts engaged)."""
        self.estop.publish(Bool(data=False))
        self.spin_until(lambda: self.gate[-1:] == ["open"], WAIT_S, "action_node's gate to open")
        self.cmd.clear()  # the zero Twists a closed gate sends are not what is measured

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            self.executor_.spin_once(timeout_sec=0.02)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor_.spin_once(timeout_sec=0.02)

    def wait_matched(self, timeout: float = WAIT_S) -> None:
        pubs = [self.camera, self.mic, self.estop, self.agent_cmd, self.agent_goal, self.user]
        pubs += [self.beat, self.localizer]
        self.spin_until(
            lambda: (
                all(p.get_subscription_count() > 0 for p in pubs)
                and all(s.get_publisher_count() > 0 for s in self.subs)
            ),
            timeout,
            "publishers and subscriptions to match",
        )

    def wait_agent(self) -> None:
        """Until the agent subscribes to its Bus: agent_node matches on ROS before its host
        has started, and an utterance sent in between would be dropped."""
        self.spin_until(lambda: "ready" in self.agent_status, WAIT_S, "the agent to start")

    def send_frames(self, n: int = 3, width: int = 64, height: int = 48) -> None:
        pixels = np.full((height, width, 3), 120, np.uint8).tobytes()
        for _ in range(n):
            self.camera.publish(convert.image_from_buffer(pixels, width, height, "rgb8"))
            self.spin_for(0.01)

    def speak(self) -> None:
        """An utterance (silence, 0.8 s of voice, trailing silence) in 20 ms chunks at 2x
        speed, with a camera frame every 100 ms of audio, as a live robot would send."""
        pcm = silence(0.2) + voiced(0.8) + silence(0.7)
        step = 2 * RATE * 20 // 1000
        for i, start in enumerate(range(0, len(pcm), step)):
            if i % 5 == 0:
                self.send_frames(1)
            self.mic.publish(convert.to_ros_audio(AudioChunk(pcm=pcm[start : start + step])))
            self.spin_for(0.01)

    def moving(self) -> bool:
        return any(lin != 0.0 for _, lin, _ in self.cmd)


LIVE_PORT = 18765
"""The agent node's live view in the live scenario (nothing else listens in the sandbox)."""


def start_nodes(
    move_s: float, sim: bool = False, live: bool = False, config: Path | None = None
) -> list[subprocess.Popen[bytes]]:
    host = f"{HERE / 'scripted_host.py'}:run"
    env = {**os.environ, "OMNI_TEST_MOVE_S": str(move_s)}
    extra = ["-p", "live_view:=true", "-p", f"live_port:={LIVE_PORT}"] if live else []
    extra += ["-p", f"config_file:={config}"] if config is not None else []
    procs = [
        subprocess.Popen(ACTION.command(), env=env),
        subprocess.Popen([*AGENT.command(), "-p", f"agent:={host}", *extra], env=env),
    ]
    if sim:
        procs.append(subprocess.Popen(SIM.command(params_file("sim")), env=env))
    return procs


def scenario_sim(probe: Probe) -> dict[str, Any]:
    """The sim graph: typed words in, the simulated robot drives (odometry changes)."""
    poses: list[tuple[float, float]] = []
    probe.create_subscription(
        RosOdometry,
        qos.ODOM,
        lambda m: poses.append((m.pose.pose.position.x, m.pose.pose.position.y)),
        qos.SENSOR,
    )
    probe.spin_until(lambda: len(poses) > 2, WAIT_S, "odometry from sim_bridge")
    start = poses[-1]
    probe.user.publish(String(data="please drive forward (camera typed)"))
    probe.spin_until(lambda: bool(probe.speech), WAIT_S, "speech on /speech/text")
    probe.spin_until(
        lambda: poses[-1][0] - start[0] > 0.05, WAIT_S, "the simulated robot to move forward"
    )
    probe.spin_until(lambda: "IDLE" in probe.states, WAIT_S, "the turn to end in IDLE")
    return {"speech": probe.speech, "start": start, "end": poses[-1], "states": probe.states}


def watch_live(
    subscribed: threading.Event, got: dict[str, list[Any]], stop: threading.Event
) -> None:
    """A Foxglove WebSocket client on the agent node's live view, in its own thread."""
    from websockets.sync.client import connect

    deadline = time.monotonic() + WAIT_S
    while True:  # the host opens the view once the node is up
        try:
            ws = connect(
                f"ws://127.0.0.1:{LIVE_PORT}",
                subprotocols=["foxglove.sdk.v1", "foxglove.websocket.v1"],  # type: ignore[list-item]
            )
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            stop.wait(0.1)
    with ws:
        channels: dict[int, str] = {}
        wanted = {"/agent/state", "/agent/turns", "/camera/image", "/transcript", "/map/scene"}
        while not wanted <= set(channels.values()):
            msg = json.loads(ws.recv())
            if msg["op"] == "advertise":
                channels.update({c["id"]: c["topic"] for c in msg["channels"]})
        subs = [{"id": cid, "channelId": cid} for cid, topic in channels.items() if topic in wanted]
        ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))
        subscribed.set()
        while not stop.is_set():
            try:
                frame = ws.recv(timeout=0.2)
            except TimeoutError:
                continue
            if isinstance(frame, bytes) and frame[0] == 1:
                (sub_id,) = struct.unpack_from("<I", frame, 1)
                topic = channels[sub_id]
                payload = frame[13:]
                is_json = topic.startswith("/agent/")
                got.setdefault(topic, []).append(json.loads(payload) if is_json else len(payload))


def scenario_live(probe: Probe) -> dict[str, Any]:
    """agent_node with live_view:=true: a Foxglove client watches a turn."""
    subscribed, stop = threading.Event(), threading.Event()
    got: dict[str, list[Any]] = {}
    errors: list[str] = []

    def client() -> None:
        try:
            watch_live(subscribed, got, stop)
        except Exception as exc:
            errors.append(repr(exc))
            subscribed.set()

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    probe.spin_until(subscribed.is_set, WAIT_S, "a Foxglove client subscribed to the live view")
    probe.send_frames()
    probe.speak()
    probe.spin_until(lambda: bool(probe.speech), WAIT_S, "speech on /speech/text")
    probe.spin_until(lambda: bool(got.get("/agent/turns")) or bool(errors), WAIT_S, "a turn live")
    probe.spin_until(lambda: bool(got.get("/camera/image")) or bool(errors), WAIT_S, "a live frame")
    stop.set()
    thread.join(timeout=WAIT_S)
    return {
        "errors": errors,
        "live_states": [m["state"] for m in got.get("/agent/state", [])],
        "live_turns": [m["say"] for m in got.get("/agent/turns", [])],
        "live_frames": len(got.get("/camera/image", [])),
        "live_transcript": len(got.get("/transcript", [])),
        "live_maps": len(got.get("/map/scene", [])),
        "speech": probe.speech,
    }


def scenario_answer(probe: Probe) -> dict[str, Any]:
    t0 = time.monotonic()
    probe.speak()
    probe.spin_until(lambda: bool(probe.speech), WAIT_S, "speech on /speech/text")
    probe.spin_until(probe.moving, WAIT_S, "a non-zero Twist on /cmd_vel")
    first_move = next(t for t, lin, _ in probe.cmd if lin != 0.0)
    probe.spin_until(lambda: probe.cmd[-1][1] == 0.0, WAIT_S, "the move to end with zero velocity")
    probe.spin_until(lambda: "IDLE" in probe.states, WAIT_S, "the turn to end in IDLE")
    return {
        "speech": probe.speech,
        "states": probe.states,
        "linear": max(lin for _, lin, _ in probe.cmd),
        "last_linear": probe.cmd[-1][1],
        "answer_s": first_move - t0,
    }


def scenario_estop(probe: Probe) -> dict[str, Any]:
    probe.speak()
    probe.spin_until(probe.moving, WAIT_S, "the robot to start moving")
    engaged_at = time.monotonic()
    probe.estop.publish(Bool(data=True))
    probe.spin_until(
        lambda: any(t > engaged_at and lin == 0.0 for t, lin, _ in probe.cmd),
        WAIT_S,
        "a zero Twist",
    )
    zero_after = next(t for t, lin, _ in probe.cmd if t > engaged_at and lin == 0.0) - engaged_at
    probe.spin_until(lambda: "SAFE_STOP" in probe.states, WAIT_S, "state SAFE_STOP")
    # commands are blocked while engaged: a direct command must not move the robot; the
    # gate answers a blocked command with a zero Twist, which is the event waited for
    blocked_from = time.monotonic()
    probe.agent_cmd.publish(convert.to_ros_twist(0.3, 0.0))
    probe.spin_until(
        lambda: any(t > blocked_from for t, _, _ in probe.cmd), WAIT_S, "the blocked answer"
    )
    after = [lin for t, lin, _ in probe.cmd if t > blocked_from]
    probe.estop.publish(Bool(data=False))
    probe.spin_until(lambda: probe.states[-1:] == ["IDLE"], WAIT_S, "IDLE after release")
    # Twists sent before the action node saw the e-stop can still be in the probe's queue
    # when it engages; DDS keeps one writer's order, so judge what follows the first zero.
    engaged = [lin for t, lin, _ in probe.cmd if t > engaged_at]
    return {
        "zero_after_s": zero_after,
        "states": probe.states,
        "linear_while_engaged": engaged[engaged.index(0.0) :],
        "after_blocked_command": after,
    }


def scenario_watchdog(probe: Probe) -> dict[str, Any]:
    probe.agent_cmd.publish(convert.to_ros_twist(0.3, 0.1))
    probe.spin_until(probe.moving, WAIT_S, "the command to reach /cmd_vel")
    started = next(t for t, lin, _ in probe.cmd if lin != 0.0)
    probe.spin_until(lambda: probe.cmd[-1][1] == 0.0, WAIT_S, "the watchdog's zero Twist")
    return {"zero_after_s": probe.cmd[-1][0] - started, "cmd": [c[1:] for c in probe.cmd]}


def scenario_bad_input(probe: Probe) -> dict[str, Any]:
    # Sensor topics are best effort and the first samples after matching can be lost,
    # so each bad message is sent a few times; the nodes log each reason once.
    for _ in range(3):
        send_bad(probe)
        probe.spin_for(0.1)
    bad_outputs = {"cmd": list(probe.cmd), "goals": len(probe.goals)}
    result = scenario_answer(probe)  # the graph still answers
    result["bad_outputs"] = bad_outputs
    return result


def send_bad(probe: Probe) -> None:
    img = convert.image_from_buffer(bytes(64 * 48 * 3), 64, 48, "rgb8")
    img.encoding = "yuv422"
    probe.camera.publish(img)
    img = convert.image_from_buffer(bytes(64 * 48 * 3 - 10), 64, 48, "rgb8")  # size
    probe.camera.publish(img)
    img = convert.image_from_buffer(bytes(64 * 48 * 3), 64, 48, "rgb8")
    img.step = 200  # padded rows: step * height != len(data)
    probe.camera.publish(img)
    probe.mic.publish(convert.to_ros_audio(AudioChunk(pcm=silence(3.0))))  # oversized
    odd = Int16MultiArray()
    odd.layout.dim = [MultiArrayDimension(label="pcm_s16_mono_44100", size=10, stride=10)]
    odd.data = [0] * 10
    probe.mic.publish(odd)  # wrong rate
    nan = Twist()
    nan.linear.x = math.nan
    probe.agent_cmd.publish(nan)
    inf = Twist()
    inf.angular.z = math.inf
    probe.agent_cmd.publish(inf)
    goal = convert.to_ros_pose(Pose2D(x=1.0, y=2.0))
    goal.pose.position.x = math.nan
    probe.agent_goal.publish(goal)
    probe.user.publish(String(data="   "))


TRUE_POSE = Pose2D(x=2.0, y=0.0)
"""Where the localizer puts the robot in the unlocalized scenario: 0.3 m short of a
keep-out zone, so the scripted 0.2 m move would take its footprint (0.25 m with the
margin) into it; from the origin, the pose before localization, the same move is clear."""
NEAR_ZONE = {"name": "stairs", "x_min": 2.3, "y_min": -1.0, "x_max": 3.0, "y_max": 1.0}


def scenario_unlocalized(probe: Probe) -> dict[str, Any]:
    """The agent is asked to move before the localizer's first pose, which arrives while
    the move is being executed (then again once localized): nothing may drive."""
    probe.map_pose = TRUE_POSE
    probe.user.publish(String(data="please drive forward"))
    probe.spin_until(lambda: "ACTING" in probe.states, WAIT_S, "the agent to act")
    probe.localize = True  # the localizer's first pose arrives now, mid-action
    probe.spin_until(lambda: probe.states[-1:] == ["IDLE"], WAIT_S, "the first turn to end")
    first = list(probe.speech)
    probe.speech.clear()
    probe.states.clear()
    probe.user.publish(String(data="please drive forward"))  # localized now
    probe.spin_until(lambda: "IDLE" in probe.states, WAIT_S, "the second turn to end")
    probe.spin_until(lambda: bool(probe.speech), WAIT_S, "the second answer")
    return {
        "moved": [lin for _, lin, _ in probe.cmd if lin != 0.0],
        "first_speech": first,
        "second_speech": probe.speech,
    }


SCENARIOS = {
    "unlocalized": (scenario_unlocalized, 1.0),
    "answer": (scenario_answer, 0.6),
    "estop": (scenario_estop, 8.0),
    "watchdog": (scenario_watchdog, 0.6),
    "bad_input": (scenario_bad_input, 0.6),
    "sim": (scenario_sim, 0.6),
    "live": (scenario_live, 0.6),
}


def main() -> int:
    assert_sandboxed()
    scenario = sys.argv[1]
    run, move_s = SCENARIOS[scenario]
    config = None
    if scenario == "unlocalized":
        config = Path(sys.argv[2]) / "agent.yaml"
        config.write_text(json.dumps({"safety": {"keepout": [NEAR_ZONE]}}))  # JSON is YAML
    procs = start_nodes(move_s, sim=scenario == "sim", live=scenario == "live", config=config)
    rclpy.init()
    result: dict[str, Any] = {}
    probe: Probe | None = None
    try:
        probe = Probe(localize=scenario not in ("sim", "unlocalized"))
        probe.wait_matched()
        probe.wait_agent()
        if scenario != "unlocalized":  # the agent refuses motion before a map-frame pose
            probe.spin_until(
                lambda: "localized" in probe.agent_status, WAIT_S, "the agent to be localized"
            )
        probe.release()
        result = run(probe)
        result["alive"] = [p.poll() is None for p in procs][:2]
    except TimeoutError as exc:
        result = {"error": str(exc), "alive": [p.poll() is None for p in procs]}
    finally:
        if probe is not None:
            probe.executor_.shutdown()
            probe.destroy_node()
        stop_processes(procs, timeout_s=WAIT_S)
        rclpy.try_shutdown()
    result["exit_codes"] = [p.returncode for p in procs][:2]
    result["sim_exit"] = procs[2].returncode if len(procs) > 2 else None
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

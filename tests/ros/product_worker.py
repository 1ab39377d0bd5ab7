"""Runs inside the private network namespace: agent_node as the product (its default host,
a model double only), restarted between sessions and probed from here; prints one JSON
object on the last stdout line.

Usage (from tests/ros/test_ros_product.py only): python product_worker.py SCENARIO WORKDIR
- remember: text mode. Alice (named on /person/identified) tells the robot something;
  agent_node is restarted; she asks; then the operator forgets her.
- omni: voice mode on the omni double. Alice's words are audio on /audio/mic; the double
  hears them, answers from remembered evidence and speaks on /speech/audio.
Waits are on events (matching, messages arriving), never fixed sleeps.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Int16MultiArray, String

from omni_agent.messages import AudioChunk
from ros_nodes import convert, qos
from ros_nodes.graph import AGENT, stop_processes
from ros_nodes.sandbox import assert_sandboxed

HERE = Path(__file__).resolve().parent
RATE = 16_000
FORGET = "/agent_node/forget_person"
TOLD = "My keys are on the kitchen table."
ASKED = "Where are my keys?"


class Probe(Node):
    """The outside world: a face-recognition node that sees Alice (her name at 5 Hz, as
    such a node sends it), a console that types, a microphone, and an operator."""

    def __init__(self, person: str = "Alice") -> None:
        super().__init__("product_probe")
        self.person = person
        self.user = self.create_publisher(String, qos.USER_TEXT, qos.COMMAND)
        self.face = self.create_publisher(String, "/person/identified", qos.COMMAND)
        self.forget = self.create_publisher(String, FORGET, qos.COMMAND)
        self.mic = self.create_publisher(Int16MultiArray, qos.MIC, qos.SENSOR)
        self.speech: list[str] = []
        self.audio: list[tuple[str, int]] = []
        self.forgotten: list[str] = []
        self.states: list[str] = []
        self.subs = [
            self.create_subscription(
                String, qos.STATE, lambda m: self.states.append(m.data), qos.LATCHED
            ),
            self.create_subscription(
                String, qos.SPEECH_TEXT, lambda m: self.speech.append(m.data), qos.COMMAND
            ),
            self.create_subscription(
                Int16MultiArray,
                qos.SPEECH_AUDIO,
                lambda m: self.audio.append((m.layout.dim[0].label, len(m.data))),
                qos.COMMAND,
            ),
            self.create_subscription(
                String, FORGET + "/result", lambda m: self.forgotten.append(m.data), qos.COMMAND
            ),
        ]
        self.create_timer(0.2, lambda: self.face.publish(String(data=self.person)))
        self.executor_ = SingleThreadedExecutor()
        self.executor_.add_node(self)

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            self.executor_.spin_once(timeout_sec=0.02)

    def matched(self) -> bool:
        pubs = [self.user, self.face, self.forget, self.mic]
        return all(p.get_subscription_count() > 0 for p in pubs) and all(
            s.get_publisher_count() > 0 for s in self.subs
        )

    def wait_listening(self, since: int, timeout: float) -> None:
        """agent_node announces its state once the agent listens (latched)."""
        self.spin_until(lambda: len(self.states) > since, timeout, "agent_node to listen")

    def say(
        self, text: str, answer: Callable[[str], bool], timeout: float, resend_s: float = 0
    ) -> str:
        """Type a line; the first new line on /speech/text that is its `answer`. Lines are
        told apart by what they say, not by their order: with `resend_s` the line is typed
        again while unanswered (a just-matched subscription may miss the first), and an
        answer to an earlier try may come late."""
        n = len(self.speech)
        deadline = time.monotonic() + timeout

        def answered() -> str | None:
            return next((line for line in self.speech[n:] if answer(line)), None)

        while True:
            self.user.publish(String(data=text))
            wait = deadline - time.monotonic()
            try:
                self.spin_until(lambda: answered() is not None, min(wait, resend_s or wait), "")
                return answered() or ""
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"timed out after {timeout:g} s waiting for an answer to {text!r}"
                    ) from None

    def greet(self, timeout: float) -> str:
        """Say hello until the robot greets the person by name: agent_node hears typed
        lines and has the face node's name (those travel on their own topics)."""
        return self.say("Hello!", lambda line: self.person in line, timeout, resend_s=5)

    def speak(self, pcm: bytes) -> None:
        """Audio into /audio/mic in 20 ms chunks, at about twice real time."""
        step = 2 * RATE * 20 // 1000
        for start in range(0, len(pcm), step):
            self.mic.publish(convert.to_ros_audio(AudioChunk(pcm=pcm[start : start + step])))
            self.executor_.spin_once(timeout_sec=0.01)


def start_agent(workdir: Path, *params: str, brain: str = "scripted") -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "OMNI_TEST_REQUESTS": str(workdir / "requests.jsonl"),
        "OMNI_TEST_BRAIN": brain,
    }
    host = f"{HERE / 'product_host.py'}:run"
    cmd = [*AGENT.command(), "-p", f"agent:={host}", "-p", f"memory_db:={workdir / 'memory.db'}"]
    for param in params:
        cmd += ["-p", param]
    return subprocess.Popen(cmd, env=env)


def stop(probe: Probe, proc: subprocess.Popen[bytes]) -> int | None:
    """SIGINT, as an operator or launch does; waits until the node has left the graph.
    Generous: the node writes its last turns to memory before it exits."""
    stop_processes([proc], timeout_s=60)
    probe.spin_until(lambda: probe.user.get_subscription_count() == 0, 20, "agent_node to leave")
    return proc.returncode


def memory_rows(db: Path) -> list[list[Any]]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT person, speaker, text FROM turns ORDER BY rowid").fetchall()
    return [list(r) for r in rows]


def requests(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "requests.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def last_user_parts(body: dict[str, Any]) -> tuple[str, list[str]]:
    """The last user message's text and the kinds of its parts."""
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content, ["text"]
    text = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return text, [p.get("type", "") for p in content]


def answers_keys(line: str) -> bool:
    return "keys" in line or "know" in line


def asking(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The requests for the question about the keys."""
    return [b for b in bodies if ASKED in last_user_parts(b)[0]]


def scenario_remember(probe: Probe, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    node = start_agent(workdir)
    procs = [node]
    try:
        probe.spin_until(probe.matched, 60, "agent_node's topics to match")
        probe.wait_listening(0, 120)
        result["greeting_1"] = probe.greet(60)
        result["told"] = probe.say(TOLD, lambda line: "remember" in line, 60)
        result["exit_1"] = stop(probe, node)
        result["rows_after_restart"] = memory_rows(workdir / "memory.db")

        seen = len(probe.states)
        node = start_agent(workdir)  # a new process, the same memory file
        procs.append(node)
        probe.spin_until(probe.matched, 60, "the restarted agent_node's topics to match")
        probe.wait_listening(seen, 120)
        result["greeting_2"] = probe.greet(60)
        result["asked"] = probe.say(ASKED, answers_keys, 60)
        text, kinds = last_user_parts(asking(requests(workdir))[-1])
        result["request_text"], result["request_parts"] = text, kinds

        probe.forget.publish(String(data="Alice"))
        probe.spin_until(lambda: bool(probe.forgotten), 30, "the forget result")
        result["forget_result"] = probe.forgotten
        result["rows_after_forget"] = memory_rows(workdir / "memory.db")
        result["asked_after_forget"] = probe.say(ASKED, answers_keys, 60)
        result["exit_2"] = stop(probe, node)
    finally:
        stop_processes(procs)
    return result


def scenario_omni(probe: Probe, workdir: Path) -> dict[str, Any]:
    from memory import Memory, MemoryTurn
    from omni_agent.speech.voices import PersonVoice, silence

    with Memory.open(workdir / "memory.db") as memory:  # what Alice said yesterday
        memory.add_turn(
            MemoryTurn(
                id="yesterday-0-user", session="yesterday", speaker="user", person="Alice",
                time=time.time() - 86_400, text=TOLD,
            )
        )  # fmt: skip
    config = workdir / "agent.yaml"
    # a loaded machine may transcribe slowly: the turn waits for its retrieval query
    config.write_text("memory:\n  transcript_wait_s: 60\n")
    pcm = silence(0.3) + PersonVoice(deterministic=True).say(ASKED) + silence(1.2)
    result: dict[str, Any] = {}
    node = start_agent(workdir, "speech:=voice", f"config_file:={config}", brain="omni-double")
    try:
        probe.spin_until(probe.matched, 60, "agent_node's topics to match")
        probe.wait_listening(0, 300)  # the speech models load first
        result["greeting"] = probe.greet(120)
        n_audio, n_speech = len(probe.audio), len(probe.speech)
        probe.speak(pcm)
        probe.spin_until(
            lambda: any(answers_keys(line) for line in probe.speech[n_speech:]),
            120,
            "an answer to the spoken question",
        )
        probe.spin_until(lambda: len(probe.audio) > n_audio, 60, "speech on /speech/audio")
        result["answer"] = next(line for line in probe.speech[n_speech:] if answers_keys(line))
        result["audio"] = probe.audio[n_audio:]
        heard = [r for r in requests(workdir) if "input_audio" in last_user_parts(r)[1]]
        result["audio_requests"] = len(heard)
        text, kinds = last_user_parts(heard[-1]) if heard else ("", [])
        result["request_text"], result["request_parts"] = text, kinds
        result["exit"] = stop(probe, node)
    finally:
        stop_processes([node])
    return result


SCENARIOS = {"remember": scenario_remember, "omni": scenario_omni}


def main() -> int:
    assert_sandboxed()
    run, workdir = SCENARIOS[sys.argv[1]], Path(sys.argv[2])
    rclpy.init()
    probe: Probe | None = None
    try:
        probe = Probe()
        result = run(probe, workdir)
    except TimeoutError as exc:
        assert probe is not None
        result = {"error": str(exc), "states": probe.states, "speech": probe.speech}
    finally:
        if probe is not None:
            probe.executor_.shutdown()
            probe.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

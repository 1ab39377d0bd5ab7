"""`omni-agent bench ros`: camera + microphone into agent_node over ROS 2, measured.

A camera publisher (640x480 rgb8 at 30 fps) and a microphone publisher (16 kHz, 20 ms
chunks) run as their own processes; agent_node runs with a measuring host that records
when each message reaches the agent's Bus. Each message carries its sequence number in
its first bytes, so sender and receiver logs join exactly (CLOCK_MONOTONIC is shared by
all processes). Reported per stream: delivered share, latency median / p99, and CPU.

Two publishers are compared side by side:
- baseline: default QoS (reliable, depth 10) and a numpy array assigned to the message,
  the way most rclpy examples do it;
- reliable: default QoS with our one-copy assignment (isolates the QoS choice);
- ours: sensor-data QoS (best effort, keep last 5) and `array.array('B', buffer)`
  assignment (one memcpy), as camera_node and microphone_node publish.
Everything runs in the private loopback-only network namespace (sandbox.py).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ros_nodes.sandbox import SANDBOX_ENV, sandbox_env, sandboxed, unavailable_reason

MODES = ("baseline", "reliable", "ours")
CHUNK_MS = 20


def register_bench(bench_subparsers: Any) -> None:
    """Add `ros` to `omni-agent bench`."""
    p = bench_subparsers.add_parser(
        "ros", help="camera 640x480@30 + 16 kHz audio into agent_node over ROS 2"
    )
    _add_args(p)
    p.set_defaults(func=_run)


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per mode")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--modes", default=",".join(MODES), help="baseline,reliable,ours")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")


def _run(args: argparse.Namespace) -> int:
    """Entry from the CLI: re-run inside the sandbox, then print the table."""
    reason = unavailable_reason()
    if reason is not None:
        print(f"bench ros: cannot run DDS safely here: {reason}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [
            sys.executable,
            "-m",
            "bench.ros",
            "inner",
            f"--seconds={args.seconds}",
            f"--fps={args.fps}",
            f"--width={args.width}",
            f"--height={args.height}",
            f"--modes={args.modes}",
            f"--json={out}",
        ]
        rc = subprocess.call(sandboxed(cmd), env=sandbox_env())
        if rc != 0 or not out.exists():
            print(f"bench ros: the sandboxed run failed (exit {rc})")
            return 1
        report = json.loads(out.read_text())
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def print_report(report: dict[str, Any]) -> None:
    print(
        f"ROS 2 into agent_node: {report['width']}x{report['height']} rgb8 at "
        f"{report['fps']:g} fps + 16 kHz audio in {CHUNK_MS} ms chunks, "
        f"{report['seconds']:g} s per mode, {report['cpus']} CPUs"
    )
    head = f"{'mode':<9} {'stream':<7} {'sent':>5} {'rate/s':>7} {'deliv':>7} {'p50 ms':>7}"
    head += f" {'p99 ms':>7}"
    print(head + f" {'pub CPU':>8} {'agent CPU':>10}")
    for mode, res in report["modes"].items():
        for stream in ("camera", "audio"):
            s = res[stream]
            print(
                f"{mode:<9} {stream:<7} {s['sent']:>5} {s['rate_hz']:>7.1f} "
                f"{s['delivered'] * 100:>6.1f}% "
                f"{s['p50_ms']:>7.2f} {s['p99_ms']:>7.2f} {s['cpu'] * 100:>7.1f}% "
                f"{res['agent_cpu'] * 100:>9.1f}%"
            )


# ---------------------------------------------------------------- inside the sandbox


def _inner(args: argparse.Namespace) -> int:
    if os.environ.get(SANDBOX_ENV) != "1":
        print("bench ros inner must run in the sandbox; use `omni-agent bench ros`")
        return 2
    report: dict[str, Any] = {
        "width": args.width,
        "height": args.height,
        "fps": args.fps,
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
        "modes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            report["modes"][mode] = _one_mode(mode, args, Path(tmp) / mode)
    Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def _one_mode(mode: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    work.mkdir()
    recv_log = work / "received.json"
    env = {**os.environ, "OMNI_BENCH_OUT": str(recv_log)}
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ros_nodes.agent_node",
            "--ros-args",
            "-p",
            "agent:=bench.ros:measure_host",
        ],
        env=env,
    )
    common = [f"--seconds={args.seconds}", f"--mode={mode}"]
    pubs = {
        "camera": subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.ros",
                "publish-camera",
                *common,
                f"--fps={args.fps}",
                f"--width={args.width}",
                f"--height={args.height}",
                f"--out={work / 'camera.json'}",
            ]
        ),
        "audio": subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.ros",
                "publish-audio",
                *common,
                f"--out={work / 'audio.json'}",
            ]
        ),
    }
    cpu: dict[str, float] = {}
    for name, proc in pubs.items():
        proc.wait()
        sent = json.loads((work / f"{name}.json").read_text())
        cpu[name] = sent["cpu_s"] / max(sent["wall_s"], 1e-9)  # the measured window only
    time.sleep(0.5)  # let the last messages land before stopping the receiver
    agent.send_signal(signal.SIGINT)
    agent.wait(timeout=10)
    received = json.loads(recv_log.read_text())
    result: dict[str, Any] = {"agent_cpu": received["cpu_s"] / max(received["wall_s"], 1e-9)}
    for name in pubs:
        sent = json.loads((work / f"{name}.json").read_text())
        result[name] = _stream_stats(sent["sent"], received[name], cpu[name], sent["wall_s"])
    return result


def _stream_stats(
    sent: dict[str, float], got: dict[str, float], cpu: float, wall_s: float
) -> dict[str, Any]:
    lat = sorted((got[k] - t) * 1000 for k, t in sent.items() if k in got)
    n = len(sent)
    return {
        "sent": n,
        "rate_hz": n / wall_s,
        "delivered": len(lat) / n if n else 0.0,
        "p50_ms": statistics.median(lat) if lat else float("nan"),
        "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan"),
        "cpu": cpu,
    }


async def measure_host(bus: Any, robot: Any, node: Any) -> None:
    """agent_node host for the bench: record the arrival of every frame and chunk."""
    from omni_agent.messages import now
    from omni_agent.transport import CAMERA, MIC

    got: dict[str, dict[str, float]] = {"camera": {}, "audio": {}}
    cpu0, wall0 = time.process_time(), time.monotonic()

    async def watch(topic: Any, name: str, seq_of: Any) -> None:
        async for msg in bus.subscribe(topic):
            got[name][str(seq_of(msg))] = now()

    tasks = [
        asyncio.create_task(
            watch(CAMERA, "camera", lambda m: int.from_bytes(m.data[:4], "little"))
        ),
        asyncio.create_task(watch(MIC, "audio", lambda m: int.from_bytes(m.pcm[:4], "little"))),
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        Path(os.environ["OMNI_BENCH_OUT"]).write_text(
            json.dumps(
                {
                    **got,
                    "cpu_s": time.process_time() - cpu0,
                    "wall_s": time.monotonic() - wall0,
                }
            )
        )


def _publisher(kind: str, args: argparse.Namespace) -> int:
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Int16MultiArray

    from omni_agent.messages import AudioChunk
    from ros_nodes import convert, qos
    from ros_nodes.runtime import init

    init([])
    node = rclpy.create_node(f"bench_{kind}")
    baseline = args.mode == "baseline"  # numpy assignment
    # 10: the default QoS (reliable, keep last 10)
    profile = qos_profile_sensor_data if args.mode == "ours" else 10
    if kind == "camera":
        pub = node.create_publisher(Image, qos.CAMERA, profile)
        period = 1.0 / args.fps
        pixels = np.random.default_rng(0).integers(
            0, 255, args.width * args.height * 3, dtype=np.uint8
        )
        frame = bytearray(pixels.tobytes())
        template = convert.image_from_buffer(bytes(frame), args.width, args.height, "rgb8")
    else:
        pub = node.create_publisher(Int16MultiArray, qos.MIC, profile)
        period = CHUNK_MS / 1000
        samples = np.zeros(16 * CHUNK_MS, np.int16)
        template = convert.to_ros_audio(AudioChunk(pcm=samples.tobytes()))
    deadline = time.monotonic() + 10
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    sent: dict[str, float] = {}

    def send(seq: int) -> None:
        tag = seq.to_bytes(4, "little")
        if kind == "camera":
            template.header.stamp = convert.ros_time()
            if baseline:
                pixels[:4] = np.frombuffer(tag, np.uint8)
                template.data = pixels  # per-element conversion
            else:
                frame[:4] = tag
                template.data = array.array("B", frame)  # one memcpy
        else:
            if baseline:
                samples[:2] = np.frombuffer(tag, np.int16)
                template.data = samples
            else:
                samples[:2] = np.frombuffer(tag, np.int16)
                template.data = array.array("h", samples.tobytes())
        pub.publish(template)

    warmup = int(1.0 / period)  # 1 s of warm-up, not measured (seq numbers above 2**30)
    due = time.monotonic()
    for i in range(warmup):
        send(2**30 + i)
        due += period
        time.sleep(max(0.0, due - time.monotonic()))
    start, cpu0 = time.monotonic(), time.process_time()
    n = int(args.seconds / period)
    for seq in range(n):
        # Latency counts from when the frame was due (captured), so time spent building
        # the message, and any backlog when the publisher cannot keep up, is included.
        sent[str(seq)] = due
        send(seq)
        due += period
        time.sleep(max(0.0, due - time.monotonic()))
    wall, cpu = time.monotonic() - start, time.process_time() - cpu0
    Path(args.out).write_text(json.dumps({"sent": sent, "wall_s": wall, "cpu_s": cpu}))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ros")
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="the benchmark (same as `omni-agent bench ros`)")
    _add_args(run)
    inner = sub.add_parser("inner")
    _add_args(inner)
    for kind in ("camera", "audio"):
        p = sub.add_parser(f"publish-{kind}")
        p.add_argument("--seconds", type=float, default=10.0)
        p.add_argument("--mode", choices=MODES, default="ours")
        p.add_argument("--fps", type=float, default=30.0)
        p.add_argument("--width", type=int, default=640)
        p.add_argument("--height", type=int, default=480)
        p.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "run":
        return _run(args)
    if args.cmd == "inner":
        return _inner(args)
    return _publisher(args.cmd.removeprefix("publish-"), args)


if __name__ == "__main__":
    raise SystemExit(main())

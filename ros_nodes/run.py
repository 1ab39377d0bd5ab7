"""Run a node graph (or one node) as processes: `python -m ros_nodes.run sim`.

For machines without the ROS launch runtime (dev laptops, CI). Unless `--real-network`
is given, everything runs in a private loopback-only network namespace with a random
domain id (see sandbox.py); on a robot use `ros2 launch` with launch/*.launch.py instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

from ros_nodes.graph import GRAPHS, NODES, params_file, stop_processes
from ros_nodes.sandbox import SANDBOX_ENV, sandbox_env, sandboxed, unavailable_reason


def register(subparsers: Any) -> None:
    """Add `omni-agent ros TARGET` (same options as `python -m ros_nodes.run`)."""
    p = subparsers.add_parser("ros", help="run the ROS 2 sim graph, the robot graph or a node")
    _add_args(p)
    p.set_defaults(func=_from_cli)


def _from_cli(args: argparse.Namespace) -> int:
    argv = [args.target, *(["--params", args.params] if args.params else [])]
    argv += ["--no-console"] * args.no_console + ["--real-network"] * args.real_network
    if args.duration:
        argv += ["--duration", str(args.duration)]
    return main(argv)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m ros_nodes.run", description=__doc__)
    _add_args(ap)
    return ap.parse_args(argv)


def _add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("target", help=f"a graph ({', '.join(GRAPHS)}) or a node ({', '.join(NODES)})")
    ap.add_argument("--params", help="parameter YAML (default: launch/<graph>_params.yaml)")
    ap.add_argument("--no-console", action="store_true", help="do not read stdin (sim)")
    ap.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds")
    ap.add_argument(
        "--real-network",
        action="store_true",
        help="skip the private namespace (only on a robot's own network)",
    )


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C stops the graph whoever started it: a shell's background job inherits SIGINT
    # ignored, and a launcher that ignores it would leave every node running.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = parse_args(argv)
    if args.target not in GRAPHS and args.target not in NODES:
        print(f"unknown target {args.target!r}: use one of {', '.join([*GRAPHS, *NODES])}")
        return 2
    if not args.real_network and os.environ.get(SANDBOX_ENV) != "1":
        reason = unavailable_reason()
        if reason is not None:
            print(f"cannot run ROS here safely: {reason}")
            return 1
        cmd = sandboxed(
            [sys.executable, "-m", "ros_nodes.run", *(sys.argv[1:] if argv is None else argv)]
        )
        return subprocess.call(cmd, env=sandbox_env())
    specs = GRAPHS.get(args.target) or (NODES[args.target],)
    params = args.params or (params_file(args.target) if args.target in GRAPHS else None)
    procs = [subprocess.Popen(spec.command(params)) for spec in specs]
    console = args.target == "sim" and not args.no_console and sys.stdin.isatty()
    try:
        if console:
            subprocess.call(NODES["console_node"].command())
        else:
            deadline = time.monotonic() + args.duration if args.duration else None
            while all(p.poll() is None for p in procs):
                if deadline is not None and time.monotonic() > deadline:
                    break
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop_processes(procs)
    failed = [s.name for s, p in zip(specs, procs, strict=True) if p.returncode not in (0, -2)]
    if failed:
        print(f"nodes that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

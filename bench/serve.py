"""`omni-agent bench serve`: time to first token, time to first audio and decode speed of an
OpenAI-compatible omni server at several concurrency levels.

Without --url it starts `omni-agent serve --tiny` (the tiny random Qwen2.5-Omni on this
machine's CPU): the figures then measure the serving path, not a real model's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from omni_agent.brain import free_port
from omni_agent.errors import UserError


def register_bench(benches: Any) -> None:
    bench = benches.add_parser("serve", help="TTFT, time to first audio, tok/s of a model server")
    bench.add_argument("--url", help="server base URL ending in /v1 (default: serve --tiny)")
    bench.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    bench.add_argument("--requests", type=int, default=16, help="requests per level (min: level)")
    bench.add_argument("--max-tokens", type=int, default=32)
    bench.add_argument("--text-only", action="store_true", help="ask for text, no speech")
    bench.add_argument("--out", type=Path, default=Path("runs/bench-serve.json"))
    bench.set_defaults(func=cmd_bench_serve)


async def _one(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, float]:
    sent = time.perf_counter()
    first_text = first_audio = None
    tokens = 0
    async with client.stream("POST", "/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise UserError(
                f"server answered HTTP {response.status_code}: {await response.aread()!r}"
            )
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            now = time.perf_counter() - sent
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content") and first_text is None:
                    first_text = now
                if delta.get("audio") and first_audio is None:
                    first_audio = now
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    total = time.perf_counter() - sent
    start = first_text if first_text is not None else total
    return {
        "ttft_s": start,
        "ttfa_s": first_audio if first_audio is not None else float("nan"),
        "total_s": total,
        "tokens": tokens,
        "tok_per_s": tokens / max(total - start, 1e-6) if tokens > 1 else float("nan"),
    }


async def _level(url: str, concurrency: int, requests: int, body: dict[str, Any]) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await _one(client, body)  # warm-up
        gate = asyncio.Semaphore(concurrency)

        async def run() -> dict[str, float]:
            async with gate:
                return await _one(client, body)

        started = time.perf_counter()
        results = await asyncio.gather(*(run() for _ in range(max(requests, concurrency))))
        wall = time.perf_counter() - started

    def median(key: str) -> float:
        values = [r[key] for r in results if r[key] == r[key]]
        return statistics.median(values) if values else float("nan")

    return {
        "concurrency": concurrency,
        "requests": len(results),
        "ttft_median_s": median("ttft_s"),
        "ttfa_median_s": median("ttfa_s"),
        "tok_per_s_median": median("tok_per_s"),
        "aggregate_tok_per_s": sum(r["tokens"] for r in results) / wall,
    }


def cmd_bench_serve(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    tiny = args.url is None
    body = {
        "messages": [
            {"role": "system", "content": "You are Robbie, a home robot."},
            {"role": "user", "content": "Where did I leave my keys yesterday?"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": args.max_tokens,
        "modalities": ["text"] if args.text_only else ["text", "audio"],
    }
    if tiny:
        console.print("[dim]starting omni-agent serve --tiny (random weights, CPU)...[/]")
    with _tiny_server() if tiny else contextlib.nullcontext(args.url) as url:
        rows = [asyncio.run(_level(url, c, args.requests, body)) for c in args.concurrency]
    table = Table(
        title=f"bench serve: {url} ({'tiny random model, CPU' if tiny else 'given server'})"
    )
    for column in (
        "concurrency",
        "requests",
        "TTFT p50",
        "first audio p50",
        "tok/s p50 (per stream)",
        "tok/s (all)",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["concurrency"]), str(row["requests"]),
            f"{row['ttft_median_s'] * 1000:.0f} ms", f"{row['ttfa_median_s'] * 1000:.0f} ms",
            f"{row['tok_per_s_median']:.1f}", f"{row['aggregate_tok_per_s']:.1f}",
        )  # fmt: skip
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"url": url, "tiny": tiny, "levels": rows}, indent=2))
    console.print(f"[dim]written to {args.out}[/]")
    return 0


@contextlib.contextmanager
def _tiny_server() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile("w+") as log:  # read back only if the server fails to start
        server = subprocess.Popen(
            [sys.executable, "-m", "omni_agent.cli", "serve", "--tiny", "--device", "cpu",
             "--port", str(port), "--max-speech-s", "1", "--max-queue", "64"],
            stdout=subprocess.DEVNULL, stderr=log, text=True,
        )  # fmt: skip
        try:
            _wait_ready(url, server, log)
            yield url
        finally:
            server.terminate()
            server.wait(10)


def _wait_ready(url: str, server: subprocess.Popen[str], log: IO[str]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            lines = log.read().strip().splitlines()
            reason = lines[-1] if lines else "no output"
            raise UserError(f"omni-agent serve --tiny exited: {reason}")
        try:
            if httpx.get(url.removesuffix("/v1") + "/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise UserError("omni-agent serve --tiny did not become ready in 300 s")

"""`omni-agent serve` (an omni model behind an OpenAI-compatible API) and `omni-agent vllm`
(the matching vLLM launch command)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

from omni_agent.errors import UserError
from serve.protocol import MediaLimits, RequestError
from serve.vllm import LAUNCH_PROFILES, launch_command

log = logging.getLogger(__name__)

GPU_EXTRA_HINT = "omni-agent serve needs the gpu extra: pip install 'omni-agent[gpu]'"


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="serve InteractiveOmni or Qwen2.5-Omni with an OpenAI-compatible API"
    )
    serve.add_argument(
        "--engine", choices=["qwen2.5-omni", "interactive-omni"], default="qwen2.5-omni"
    )
    serve.add_argument("--model", type=Path, help="local directory with the model's weights")
    serve.add_argument(
        "--tiny", action="store_true",
        help="serve a tiny random Qwen2.5-Omni built on the spot (a smoke test, no weights)",
    )  # fmt: skip
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve the robot's LAN")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--device", default="auto", help="auto, cuda, cuda:1, cpu")
    serve.add_argument("--dtype", default="auto", help="auto, bfloat16, float16, float32")
    serve.add_argument("--concurrency", type=int, default=1, help="generations at once")
    serve.add_argument("--max-queue", type=int, default=32, help="waiting requests before 503")
    serve.add_argument("--max-tokens", type=int, default=1024, help="cap on reply tokens")
    serve.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body")
    serve.add_argument(
        "--max-speech-s", type=float, default=60.0, help="cap on one spoken answer (seconds)"
    )
    serve.add_argument(
        "--allowed-local-media-path", type=Path,
        help="directory whose files requests may name as file:// URLs",
    )  # fmt: skip
    serve.set_defaults(func=cmd_serve)

    vllm = commands.add_parser(
        "vllm", help="print (or run) the vLLM launch command for a Qwen-Omni profile"
    )
    vllm.add_argument("profile", choices=sorted(LAUNCH_PROFILES))
    vllm.add_argument("--model", help="model name or local path (default: the profile's)")
    vllm.add_argument("--host", default="127.0.0.1")
    vllm.add_argument("--port", type=int, default=8000)
    vllm.add_argument("--run", action="store_true", help="start vLLM instead of printing")
    vllm.add_argument(
        "--replicas", type=int, default=1, metavar="N",
        help="serve a fleet: N engine replicas (one GPU each) behind one endpoint",
    )  # fmt: skip
    vllm.set_defaults(func=cmd_vllm)


def check_serve_args(args: argparse.Namespace) -> None:
    """Every argument checked before torch is imported or a model built (seconds to
    minutes): a mistake is one line, exit 2."""
    positive = {
        "--concurrency": args.concurrency,
        "--max-tokens": args.max_tokens,
        "--max-body-mb": args.max_body_mb,
        "--max-speech-s": args.max_speech_s,
    }
    for flag, value in positive.items():
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"{flag} must be a positive number, got {value}")
    if args.max_queue < 0:
        raise UserError(f"--max-queue must be at least 0, got {args.max_queue}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {args.port}")
    if args.tiny == (args.model is not None):
        raise UserError("give either --model DIR or --tiny")
    if args.tiny and args.engine != "qwen2.5-omni":
        raise UserError("--tiny builds a Qwen2.5-Omni; use --engine qwen2.5-omni")
    media = args.allowed_local_media_path
    if media is not None and not media.is_dir():
        raise UserError(f"--allowed-local-media-path {media} is not a folder")


def cmd_serve(args: argparse.Namespace) -> int:
    check_serve_args(args)
    try:
        import fastapi  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import uvicorn
    except ImportError:
        raise UserError(GPU_EXTRA_HINT) from None
    from pydantic import ValidationError

    from serve.app import ServeSettings, create_app
    from serve.engines import load_engine

    try:
        settings = ServeSettings(
            concurrency=args.concurrency,
            max_queue=args.max_queue,
            max_tokens=args.max_tokens,
            max_body_mb=args.max_body_mb,
            api_key=os.environ.get("OMNI_AGENT_API_KEY") or None,
            limits=MediaLimits(allowed_local_path=args.allowed_local_media_path),
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise UserError(f"--{problem['loc'][0]}: {problem['msg']}".replace("_", "-")) from None
    if args.tiny:
        from serve.tiny_model import build

        args.model = build(Path(tempfile.mkdtemp(prefix="omni-tiny-")) / "tiny-qwen2.5-omni")
    try:
        engine = load_engine(args.engine, args.model, args.device, args.dtype, args.max_speech_s)
    except RequestError as exc:
        raise UserError(str(exc)) from None
    print(
        f"serving {engine.name} ({engine.model_id}) on http://{args.host}:{args.port}/v1 "
        f"- agent: --model-url http://{args.host}:{args.port}/v1 --profile omni-agent-serve",
        flush=True,
    )
    uvicorn.run(create_app(engine, settings), host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_vllm(args: argparse.Namespace) -> int:
    profile = LAUNCH_PROFILES[args.profile]
    command = launch_command(profile, args.model, args.host, args.port)
    replicas = getattr(args, "replicas", 1)
    if replicas < 1:
        raise UserError(f"--replicas must be at least 1 (got {replicas})")
    if replicas > 1:
        # vLLM's data parallelism: N engine copies, one API server balancing requests.
        command += ["--data-parallel-size", str(replicas)]
    if not args.run:
        print(shlex.join(command))
        if replicas > 1:
            print(
                f"# fleet: {replicas} replicas, one GPU each, one endpoint; every robot uses"
                " the same --model-url. Across machines: one such server per machine behind"
                " a load balancer (docs/serve.md, 'A fleet of robots')."
            )
        print(
            f"# agent: omni-agent --model-url http://{args.host}:{args.port}/v1 "
            f"--profile {profile.client_profile} sim"
        )
        return 0
    if shutil.which(command[0]) is None:
        raise UserError(f"{command[0]} is not installed here: {profile.install}")
    os.execvp(command[0], command)
    return 0  # not reached

"""`omni-agent`: the command line, and the one place that composes the packages.

The core adds `config`; every other command comes from the package that owns it, found
through the `omni_agent.commands` entry points (pyproject.toml): each names a
`register(subparsers)` whose parsers set `func(args) -> int`. So the runtime never
imports the simulator or the benchmarks, and a package whose dependencies are not
installed leaves a command that says so in one line.

Errors a user can meet (bad config, missing model, server down, bad scenario) end the
program with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from memory.sql_store import StoreError
from omni_agent.config import Config, load_config, parse_override
from omni_agent.errors import UserError

log = logging.getLogger("omni_agent")

COMMANDS_GROUP = "omni_agent.commands"


def command_hooks() -> list[tuple[str, Callable[[Any], None] | ImportError]]:
    """(name, register) for each installed entry point of COMMANDS_GROUP, or (name, the
    ImportError) when its package's dependencies are missing."""
    hooks: list[tuple[str, Callable[[Any], None] | ImportError]] = []
    for ep in entry_points(group=COMMANDS_GROUP):
        try:
            hooks.append((ep.name, ep.load()))
        except ImportError as exc:
            log.debug("command %s unavailable: %s", ep.name, exc)
            hooks.append((ep.name, exc))
    return hooks


def add_unavailable(subparsers: Any, name: str, exc: ImportError) -> None:
    """A command whose package cannot be imported: it takes any arguments and exits with
    one line naming what is missing, instead of argparse's "invalid choice"."""
    what = exc.name or str(exc)
    # no option prefix: every argument, "--help" included, is taken as given
    parser = subparsers.add_parser(
        name, help=f"(unavailable: needs {what})", add_help=False, prefix_chars="\0"
    )
    parser.add_argument("rest", nargs="*")

    def unavailable(args: argparse.Namespace) -> int:
        raise UserError(
            f"`{name}` needs {what}, which is not installed: install the extra that "
            "provides it (see pyproject.toml)"
        )

    parser.set_defaults(func=unavailable)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omni-agent", description="Embodied, spoken, long-memory robot controller."
    )
    parser.add_argument("--config", type=Path, help="YAML config (see omni_agent/agent.yaml)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
        help="override one config field (repeatable)",
    )  # fmt: skip
    parser.add_argument("--model-url", help="OpenAI-compatible endpoint (.../v1); key from env")
    parser.add_argument("--profile", help="backend profile for --model-url")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)

    show = commands.add_parser("config", help="print the effective configuration")
    show.set_defaults(func=cmd_config)

    hooks = command_hooks()
    if not hooks:
        parser.epilog = (
            f"No {COMMANDS_GROUP} entry points are installed: reinstall the project "
            "(pip install -e .) to get sim, replay, bench, memory, ros and serve."
        )
    for name, hook in hooks:
        if isinstance(hook, ImportError):
            add_unavailable(commands, name, hook)
        else:
            hook(commands)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = dict(parse_override(item) for item in args.set)
    if args.model_url:
        overrides["model.url"] = args.model_url
        overrides.setdefault("model.profile", args.profile or "vllm-omni-thinker")
    elif args.profile:
        overrides["model.profile"] = args.profile
    if getattr(args, "scenario", None):
        overrides["sim.scenario"] = str(args.scenario)
    if getattr(args, "out", None) and args.command == "sim":
        overrides["sim.out_dir"] = str(args.out)
    return load_config(args.config, overrides)


def cmd_config(args: argparse.Namespace) -> int:
    config: Config = args.settings
    import yaml

    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        # every command reads the effective configuration from args.settings
        args.settings = config_from_args(args)
        if not args.verbose:
            logging.getLogger().setLevel(args.settings.log_level)
        return int(args.func(args))
    except (UserError, StoreError) as exc:  # memory cannot import UserError: it has its own
        print(f"omni-agent: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

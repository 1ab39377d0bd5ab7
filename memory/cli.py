"""`omni-agent memory import|export|search|show|stats|forget`.

`register(subparsers)` adds the command to the agent's argparse; `main()` runs it alone
(`python -m memory`). Each handler returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

DEFAULT_DB = "runs/memory.db"


def register(subparsers: Any) -> None:
    """Add the `memory` command to an argparse subparsers object."""
    p = subparsers.add_parser("memory", help="long-term memory: import, export, search, forget")
    p.add_argument(
        "--db",
        help="memory database: a SQLite file, or postgresql://... for a fleet's shared memory"
        f" (default: memory.url, else memory.path, else {DEFAULT_DB})",
    )
    sub = p.add_subparsers(dest="memory_command", required=True)

    imp = sub.add_parser("import", help="import turns from a JSONL file (ids kept)")
    imp.add_argument("file")
    imp.set_defaults(func=_import)

    exp = sub.add_parser("export", help="export turns as JSONL")
    exp.add_argument("file", nargs="?", default="-", help="output file (default stdout)")
    exp.add_argument("--person", help="only this person's own turns")
    exp.set_defaults(func=_export)

    se = sub.add_parser("search", help="hybrid search, with score parts and reasons")
    se.add_argument("query")
    se.add_argument("--person", help="search as this person (sees own and shared turns)")
    se.add_argument("-k", type=int, default=10)
    se.add_argument("--json", action="store_true", help="one JSON object per result line")
    se.set_defaults(func=_search)

    sh = sub.add_parser("show", help="show one turn, or the context built for a query")
    sh.add_argument("turn_id", nargs="?")
    sh.add_argument("--query", help="build and show the context for this query")
    sh.add_argument("--person")
    sh.add_argument("--budget", type=int, default=2000)
    sh.add_argument("--strategy", default="hybrid")
    sh.set_defaults(func=_show)

    st = sub.add_parser("stats", help="counts, people, places, schema version")
    st.set_defaults(func=_stats)

    fo = sub.add_parser("forget", help="delete everything about one person, files included")
    fo.add_argument("--person", required=True)
    fo.set_defaults(func=_forget)


def _open(args: argparse.Namespace, strategy: str = "hybrid") -> Any:
    from memory.facade import Memory

    if args.db is None:
        settings = getattr(args, "settings", None)
        memory = getattr(settings, "memory", None)
        args.db = str(getattr(memory, "url", None) or getattr(memory, "path", DEFAULT_DB))
    return Memory.open(args.db, strategy)


def _import(args: argparse.Namespace) -> int:
    from memory.jsonl import JsonlError, import_jsonl

    with _open(args) as mem:
        try:
            n = import_jsonl(mem, args.file)
        except JsonlError as e:
            print(f"error: {e}; nothing was imported", file=sys.stderr)
            return 2
    print(f"imported {n} turns into {args.db}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from memory.jsonl import export_jsonl

    with _open(args) as mem:
        n = export_jsonl(mem, sys.stdout if args.file == "-" else args.file, args.person)
    if args.file != "-":
        print(f"exported {n} turns to {args.file}")
    return 0


def _search(args: argparse.Namespace) -> int:
    with _open(args) as mem:
        results = mem.search(args.query, person=args.person, k=args.k)
    for r in results:
        if args.json:
            print(json.dumps(r.model_dump(exclude={"turn"}) | {"text": r.turn.text}))
        else:
            print(f"{r.score:.3f}  {r.turn_id}  {r.turn.text[:70]!r}\n       {r.reason}")
    return 0


def _show(args: argparse.Namespace) -> int:
    with _open(args, args.strategy) as mem:
        if args.query:
            ctx = mem.build_context(args.query, person=args.person, budget_tokens=args.budget)
            for item in ctx.items:
                print(f"{item.kind:8} {item.turn_id or '-':12} {item.reason}\n    {item.text}")
            print(f"{ctx.tokens}/{ctx.budget} tokens")
            return 0
        if not args.turn_id:
            print("error: give a turn id or --query", file=sys.stderr)
            return 2
        st = mem.store.get_turn(args.turn_id)
        if st is None:
            print(f"error: no turn {args.turn_id!r} in {args.db}", file=sys.stderr)
            return 1
        print(st.turn.model_dump_json(indent=2, exclude_none=True))
    return 0


def _stats(args: argparse.Namespace) -> int:
    with _open(args) as mem:
        print(json.dumps(mem.store.stats(), indent=2))
    return 0


def _forget(args: argparse.Namespace) -> int:
    with _open(args) as mem:
        n = mem.forget_person(args.person)
    print(f"forgot {args.person}: {n} turns and their files removed")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memory")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))

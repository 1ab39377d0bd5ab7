"""`omni-agent memory import|export|search|show|stats|forget`.

`register(subparsers)` adds the command to the agent's argparse; `main()` runs it alone
(`python -m memory`). Each handler returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
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
    # The program's name for error lines: "omni-agent" or "python -m memory".
    p.set_defaults(error_prog=p.prog.rsplit(" ", 1)[0])
    sub = p.add_subparsers(dest="memory_command", required=True)

    imp = sub.add_parser("import", help="import turns from a JSONL file (ids kept)")
    imp.add_argument("file")
    imp.add_argument(
        "--media-root",
        help="folder that image_path/audio_path may point into (default: the file's folder)",
    )
    imp.set_defaults(func=_one_line_errors(_import))

    exp = sub.add_parser("export", help="export turns as JSONL")
    exp.add_argument("file", nargs="?", default="-", help="output file (default stdout)")
    exp.add_argument("--person", type=_person, help="only this person's own turns")
    exp.set_defaults(func=_one_line_errors(_export))

    se = sub.add_parser("search", help="hybrid search, with score parts and reasons")
    se.add_argument("query")
    se.add_argument(
        "--person", type=_person, help="search as this person (sees own and shared turns)"
    )
    se.add_argument("-k", type=_positive, default=10)
    se.add_argument("--json", action="store_true", help="one JSON object per result line")
    se.set_defaults(func=_one_line_errors(_search))

    sh = sub.add_parser("show", help="show one turn, or the context built for a query")
    sh.add_argument("turn_id", nargs="?")
    sh.add_argument("--query", help="build and show the context for this query")
    sh.add_argument("--person", type=_person)
    sh.add_argument("--budget", type=_positive, default=2000)
    sh.add_argument("--strategy", default="hybrid")
    sh.set_defaults(func=_one_line_errors(_show))

    st = sub.add_parser("stats", help="counts, people, places, schema version")
    st.set_defaults(func=_one_line_errors(_stats))

    fo = sub.add_parser("forget", help="delete everything about one person, files included")
    fo.add_argument("--person", required=True, type=_person)
    fo.set_defaults(func=_one_line_errors(_forget))


class MemoryCliError(ValueError):
    """A mistake on the command line: printed as one line, exit status 2."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _person(text: str) -> str:
    """A --person value, by the same name rule as every store."""
    from memory.names import InvalidPersonName, person_name

    try:
        return person_name(text)
    except InvalidPersonName as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _one_line_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Errors a user can fix (a bad file, a bad database, a bad argument) end the command
    with one line on stderr and exit status 2; anything else is a bug and keeps its
    traceback."""

    def run(args: argparse.Namespace) -> int:
        import sqlite3

        from memory.jsonl import JsonlError
        from memory.sql_store import StoreError
        from memory.store import unusable

        try:
            return handler(args)
        except (JsonlError, StoreError, MemoryCliError) as e:
            message = str(e)
        except sqlite3.DatabaseError as e:  # damage found past opening the file
            message = unusable(args.db, e)
        print(f"{args.error_prog}: error: {message}", file=sys.stderr)
        return 2

    return run


def _open(args: argparse.Namespace, strategy: str = "hybrid") -> Any:
    from memory.facade import Memory

    if args.db is None:
        settings = getattr(args, "settings", None)
        memory = getattr(settings, "memory", None)
        args.db = str(getattr(memory, "url", None) or getattr(memory, "path", DEFAULT_DB))
    return Memory.open(args.db, strategy)


def _import(args: argparse.Namespace) -> int:
    from memory.jsonl import JsonlError, add_imported, read_jsonl

    try:
        # The file is checked before the database is opened: a bad file changes nothing.
        turns = read_jsonl(args.file, args.media_root)
        _no_nul(turns, args.file)
        with _open(args) as mem:
            n = add_imported(mem, turns, args.file)
    except JsonlError as e:
        raise JsonlError(f"{e}; nothing was imported") from None
    print(f"imported {n} turns into {args.db}")
    return 0


def _no_nul(turns: Sequence[Any], source: str) -> None:
    """A NUL character is refused before any database is opened: PostgreSQL cannot store
    it in text, and the import must change nothing rather than stop half-way."""
    from memory.jsonl import JsonlError

    def texts(value: Any) -> Any:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from texts(v)
        elif isinstance(value, list | tuple):
            for v in value:
                yield from texts(v)

    for n, turn in enumerate(turns, start=1):
        if any("\x00" in t for t in texts(turn.model_dump())):
            raise JsonlError(f"{source}: turn {n} holds a NUL character (U+0000)")


def _export(args: argparse.Namespace) -> int:
    from memory.jsonl import export_jsonl

    with _open(args) as mem:
        try:
            n = export_jsonl(mem, sys.stdout if args.file == "-" else args.file, args.person)
        except OSError as e:
            raise MemoryCliError(f"cannot write {args.file}: {e.strerror or e}") from None
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
    from memory.context import STRATEGIES

    if args.strategy not in STRATEGIES:
        raise MemoryCliError(
            f"unknown strategy {args.strategy!r}; choose one of {', '.join(sorted(STRATEGIES))}"
        )
    with _open(args, args.strategy) as mem:
        if args.query:
            ctx = mem.build_context(args.query, person=args.person, budget_tokens=args.budget)
            for item in ctx.items:
                print(f"{item.kind:8} {item.turn_id or '-':12} {item.reason}\n    {item.text}")
            print(f"{ctx.tokens}/{ctx.budget} tokens")
            return 0
        if not args.turn_id:
            raise MemoryCliError("give a turn id or --query")
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
    print(f"forgot {args.person}: {n} turns and their files removed from {_shown(args.db)}")
    prints, problem = _forget_voiceprint(_voiceprints_path(args), args.person)
    if problem:
        print(f"{args.error_prog}: error: {problem}", file=sys.stderr)
        return 1
    print(prints)
    return 0


def _shown(db: str) -> str:
    """The database as printed: a PostgreSQL URL without its password."""
    from urllib.parse import urlsplit

    if not db.startswith("postgres"):
        return db
    url = urlsplit(db)
    host = url.hostname or ""
    return f"{url.scheme}://{host}{f':{url.port}' if url.port else ''}{url.path}"


def _voiceprints_path(args: argparse.Namespace) -> Path:
    """The voiceprints of speaker identification live beside the memory's SQLite file, and
    with a PostgreSQL memory beside `memory.path` (where the agent keeps them too)."""
    from memory.voiceprints import VoiceprintStore

    if not str(args.db).startswith("postgres"):
        return VoiceprintStore.beside(Path(args.db))
    memory = getattr(getattr(args, "settings", None), "memory", None)
    return VoiceprintStore.beside(Path(getattr(memory, "path", DEFAULT_DB)))


def _forget_voiceprint(path: Path, person: str) -> tuple[str, str]:
    """Delete the person's voiceprint: (what was done, what could not be done)."""
    import sqlite3

    from memory.voiceprints import VoiceprintStore

    if not path.exists():
        return f"no voiceprints file at {path}: no voiceprint to delete", ""
    try:
        store = VoiceprintStore(path)
        try:
            gone = store.forget(person)
        finally:
            store.close()
    except sqlite3.Error as e:
        return "", f"could not delete {person}'s voiceprint from {path}: {e}"
    if gone:
        return f"deleted {person}'s voiceprint from {path}", ""
    return f"no voiceprint of {person} in {path}", ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memory", description="memory only")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))

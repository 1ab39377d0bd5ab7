"""What a person watching an episode sees: a live transcript and a summary.

Tables go to a terminal as rich tables; piped into a log or CI they are printed as plain
aligned text at their natural width, because rich squeezes a table into 80 columns when
it cannot ask the terminal, and cuts every header to a few letters.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from omni_agent.events import AgentEvent
from sim.runner import EpisodeResult


class TranscriptPrinter:
    """An event sink that prints the conversation, actions and state changes as they happen."""

    def __init__(self, console: Console, show_states: bool = True) -> None:
        self.console = console
        self.show_states = show_states

    def __call__(self, event: AgentEvent) -> None:
        d = event.data
        c = self.console
        if event.kind == "user":
            c.print(f"[bold cyan]{d.get('person') or 'User'}:[/] {d['text']}", highlight=False)
        elif event.kind == "robot":
            c.print(f"[bold green]Robot:[/] {d['text']}", highlight=False)
        elif event.kind == "turn":
            if d.get("interrupted") and not d.get("error"):
                c.print(f"  [dim](interrupted after: {d.get('spoken') or 'nothing'!r})[/]")
            lat = d.get("latency_ms", {})
            if "first_token" in lat:
                c.print(
                    f"  [dim]first token {lat['first_token']:.0f} ms, "
                    f"done {lat.get('done', 0):.0f} ms[/]"
                )
            if d.get("error"):
                c.print(f"  [bold red]error:[/] {d['error']}", highlight=False)
        elif event.kind == "action":
            c.print(f"  [yellow]action[/] {_action_text(d['action'])} -> {d.get('detail', '')}")
        elif event.kind == "rejected":
            c.print(f"  [red]rejected[/] {d['skill']}: {d['reason']}", highlight=False)
        elif event.kind == "state" and self.show_states:
            why = f" ({d['reason']})" if d.get("reason") else ""
            c.print(f"  [dim]{d['source']} -> {d['dest']}{why}[/]", highlight=False)
        elif event.kind == "note":
            c.print(f"  [magenta]{d['text']}[/]", highlight=False)


def _action_text(action: dict[str, object]) -> str:
    args = ", ".join(f"{k}={v}" for k, v in action.items() if k != "skill")
    return f"{action.get('skill')}({args})"


def print_table(
    console: Console,
    title: str,
    columns: Sequence[str] | None,
    rows: Sequence[Sequence[str] | None],
    *,
    right: Sequence[str] = (),
) -> None:
    """A rich table on a terminal; plain, unclipped, aligned text elsewhere.

    `columns` None: a table without a header. A row None starts a new section (a rule).
    Cells may carry rich markup; the plain layout prints their text only.
    """
    if console.is_terminal:
        table = Table(title=title, show_header=columns is not None)
        for col in columns or [""] * max(len(r) for r in rows if r is not None):
            table.add_column(col, justify="right" if col in right else "left")
        for row in rows:
            if row is None:
                table.add_section()
            else:
                table.add_row(*row)
        console.print(table)
        return
    for line in plain_table(title, columns, rows, right=right):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def plain_table(
    title: str,
    columns: Sequence[str] | None,
    rows: Sequence[Sequence[str] | None],
    *,
    right: Sequence[str] = (),
) -> list[str]:
    """The lines of a table as plain text: columns two spaces apart, nothing cut."""
    body = [[Text.from_markup(c).plain for c in r] if r is not None else None for r in rows]
    header = list(columns) if columns is not None else None
    grid = [r for r in ([header] if header else []) + body if r is not None]
    n = max(len(r) for r in grid)
    widths = [max(len(r[i]) for r in grid if i < len(r)) for i in range(n)]
    names = header or [""] * n

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(widths[i]) if names[i] in right else c.ljust(widths[i])
            for i, c in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    out = [title]
    if header:
        out += [line(header), "  ".join("-" * w for w in widths)]
    for row in body:
        out.append("  ".join("-" * w for w in widths) if row is None else line(row))
    return out


def print_summary(result: EpisodeResult, console: Console) -> None:
    executed = [r for t in result.turns for r in t.executed if r.ok]
    rejected = [reason for t in result.turns for reason in t.rejected]
    table = _Rows()
    table.add_row("turns", str(len(result.turns)))
    table.add_row("actions executed", str(len(executed)))
    table.add_row("actions rejected", str(len(rejected)))
    for reason in rejected:
        table.add_row("", f"[red]{reason}[/]")
    table.add_row("safety violations", str(len(result.violations)))
    for v in result.violations:
        table.add_row("", f"[red]{v}[/]")
    table.add_row("robot ends at", result.final_place or "an unnamed spot")
    met = sum(c.passed for c in result.checks)
    table.add_row("expectations met", f"{met}/{len(result.checks)}")
    for check in result.checks:
        mark = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        table.add_row("", f"{mark} {check.description} [dim]({check.detail})[/]")
    medians = result.latency_medians_ms()
    for stage in ("first_token", "first_speech", "done"):
        if stage in medians:
            table.add_row(f"median {stage.replace('_', ' ')}", f"{medians[stage]:.0f} ms")
    if result.log_path:
        table.add_row("episode log", str(result.log_path))
    print_table(console, f"Episode summary: {result.scenario}", None, table.rows)


class _Rows:
    def __init__(self) -> None:
        self.rows: list[list[str] | None] = []

    def add_row(self, *cells: str) -> None:
        self.rows.append(list(cells))

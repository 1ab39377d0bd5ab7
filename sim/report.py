"""What a person watching an episode sees: a live transcript and a summary."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

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


def print_summary(result: EpisodeResult, console: Console) -> None:
    executed = [r for t in result.turns for r in t.executed if r.ok]
    rejected = [reason for t in result.turns for reason in t.rejected]
    table = Table(title=f"Episode summary: {result.scenario}", show_header=False)
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
    console.print(table)

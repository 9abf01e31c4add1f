"""Following a job from the CLI: a live step board on a terminal, plain lines elsewhere.

On a TTY, rich redraws one overall bar and a row per step in place, with the
job's log lines scrolling above. Piped or captured (make demo into a file, CI
logs, tests), it prints each new log line and one progress line whenever a
step changes, so the output reads top to bottom with no control characters.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from app import config
from app.domain.services import queries

View = dict[str, Any]
ICONS = {
    "pending": ("·", "dim"),
    "in_progress": ("▶", "cyan"),
    "completed": ("✔", "green"),
    "failed": ("✘", "red"),
    "compensating": ("↺", "yellow"),
    "rolled_back": ("↺", "yellow"),
    "compensation_failed": ("!", "bold red"),
    "skipped": ("-", "dim"),
}
BAR_WIDTH = 20


def job_views(job_id: uuid.UUID, poll: float, timeout: float | None = None) -> Iterator[View]:
    """The job as the status endpoint shows it, until (and including) its end;
    CommandFailed(TIMEOUT) if ``timeout`` seconds pass first."""
    from app.cli_support import Exit, fail

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        view = queries.job_view(job_id, config.current())
        if view is None:
            fail(f"job {job_id} not found", Exit.NOT_FOUND)
        yield view
        if view["completedAt"]:
            return
        if deadline is not None and time.monotonic() > deadline:
            fail(f"job {job_id} still running after {timeout:g}s (it goes on)", Exit.TIMEOUT)
        time.sleep(poll)


class LogTail:
    """Hands out each log line once (the view carries the latest lines only)."""

    def __init__(self) -> None:
        self._seen: list[str] = []

    def new_lines(self, view: View) -> list[str]:
        lines: list[str] = view["logs"]
        overlap = self._overlap(lines)
        self._seen = lines
        return lines[overlap:]

    def _overlap(self, lines: list[str]) -> int:
        # The longest suffix of what we saw that starts the new window.
        for size in range(min(len(self._seen), len(lines)), 0, -1):
            if self._seen[-size:] == lines[:size]:
                return size
        return 0


def step_summary(step: View) -> str:
    text = step["status"]
    if step.get("attempts", 0) > 1:
        text += f" (attempt {step['attempts']})"
    if step.get("durationSeconds") is not None and step["status"] != "in_progress":
        text += f" {step['durationSeconds']:.1f}s"
    return text


def plain_line(view: View) -> str:
    """One self-contained progress line: bar, percentage, status, current step."""
    percentage = int(view["progress"]["percentage"])
    bar = "#" * (percentage * BAR_WIDTH // 100)
    done = sum(1 for s in view["steps"] if s["status"] == "completed")
    steps = f"({done}/{len(view['steps'])} steps)"
    line = f"[{bar:<{BAR_WIDTH}}] {percentage:3d}% {view['status']} {steps}"
    running = [s for s in view["steps"] if s["status"] in ("in_progress", "compensating")]
    if running:
        line += f" - {running[0]['name']}: {step_summary(running[0])}"
    return line


def _step_signature(view: View) -> tuple[Any, ...]:
    return (view["status"], tuple((s["status"], s["attempts"]) for s in view["steps"]))


def follow_plain(views: Iterator[View], echo: Callable[[str], None]) -> View:
    tail, last_signature, view = LogTail(), None, None
    for view in views:
        for line in tail.new_lines(view):
            echo(f"  {line}")
        if _step_signature(view) != last_signature:
            last_signature = _step_signature(view)
            echo(plain_line(view))
    assert view is not None
    return view


def step_table(view: View) -> Table:
    # Text cells, not markup strings: a print during the live display may render
    # the board with markup off, which would show the tags literally.
    table = Table.grid(padding=(0, 2))
    for step in view["steps"]:
        icon, style = ICONS.get(step["status"], ("?", ""))
        table.add_row(
            Text(icon, style=style), Text(step["name"]), Text(step_summary(step), style=style)
        )
    return table


def follow_live(views: Iterator[View], console: Console) -> View:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=40),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    overall = progress.add_task("starting", total=100)
    tail, view = LogTail(), None
    with Live(console=console, refresh_per_second=8, transient=False) as live:
        for view in views:
            for line in tail.new_lines(view):
                live.console.print(Text(f"  {line}"))
            progress.update(
                overall,
                completed=view["progress"]["percentage"],
                description=f"{view['departmentId']}: {view['status']}",
            )
            live.update(Group(step_table(view), progress))
    assert view is not None
    return view


def follow(
    job_id: uuid.UUID,
    poll: float = 0.5,
    console: Console | None = None,
    timeout: float | None = None,
) -> str:
    """Follows the job to its end; returns its final status (lower-case)."""
    console = console or Console(highlight=False)
    views = job_views(job_id, poll, timeout)
    live = console.is_terminal
    view = follow_live(views, console) if live else follow_plain(views, click.echo)
    if view["error"]:
        click.echo(f"error: {view['error']}", err=True)
    return str(view["status"])

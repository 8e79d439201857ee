"""How the command line prints for people: plurals, rich tables, pretty JSON.

Invariants:
- importing this module imports neither rich nor anything heavy: `rich` is imported inside the
  functions that print, so `agentfactory --help` and commands that never print a table stay fast.
- on a terminal, output may use colour and fit the terminal's width; when stdout is not a
  terminal (a pipe, a file, a test) it has no ANSI codes, is laid out at a fixed wide width
  (`PIPE_WIDTH`) so names are never cut, and is the same on every run.
- `--json` output never goes through here: it stays byte-for-byte what `json.dumps` writes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

PIPE_WIDTH = 200
"""Columns used when stdout is not a terminal: wide enough that no name is ever truncated."""

_IRREGULAR = {"entry": "entries", "dependency": "dependencies", "key": "keys"}


def plural(count: int, word: str) -> str:
    """`count` and `word`, singular for exactly one: "1 rating", "0 ratings", "2 entries"."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {_IRREGULAR.get(word, word + 's')}"


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr): styled on a terminal, plain and wide otherwise."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    return Console(
        file=stream,
        force_terminal=terminal,
        no_color=not terminal,
        highlight=False,
        markup=False,  # names, summaries and reasons come from strangers: print them verbatim
        emoji=False,
        width=None if terminal else PIPE_WIDTH,
        soft_wrap=not terminal,
    )


def show(*renderables: Any) -> None:
    """Print rich renderables (tables, `Text`, plain strings), each starting on its own line.

    On a terminal rich draws them as it likes; in a pipe the text is plain and each line loses
    the trailing spaces that table cells are padded with, so scripts and diffs see clean lines.
    """
    out = console()
    if out.is_terminal:
        for item in renderables:
            out.print(item)
        return
    with out.capture() as captured:
        for item in renderables:
            out.print(item)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def table(*columns: str, wrap: tuple[str, ...] = ()) -> Table:
    """A borderless table with bold headers; only the columns named in `wrap` may wrap."""
    from rich import box
    from rich.table import Table

    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for title in columns:
        grid.add_column(title, no_wrap=title not in wrap, overflow="fold")
    return grid


def print_result_json(value: Any) -> None:
    """An agent's result: highlighted JSON on a terminal, plain indented JSON in a pipe."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    if not stdout_is_terminal():
        click.echo(text)
        return
    console().print_json(text, indent=2, ensure_ascii=False)


def _expected(line: str) -> float | None:
    expected: float | None = getattr(line, "expected_s", None)  # a `sandbox.build.Step`
    return expected


@contextmanager
def build_steps() -> Iterator[Callable[[str], None]]:
    """A receiver for `sandbox.build` step lines, on stderr (stdout stays clean for --json).

    On a terminal each step is a live line: a spinner, the step, the time spent so far and, for
    the long opaque steps, a bar of elapsed against expected time (stopping just short of full
    while a step overruns). rich redraws it from its own thread, so it keeps moving while the
    step blocks. Elsewhere each step is one plain line with its expected duration.
    """
    if not sys.stderr.isatty():
        def say(line: str) -> None:
            expected = _expected(line)
            click.secho(f"{line} (about {expected:.0f} s)..." if expected else line,
                        err=True, fg="cyan")

        yield say
        return
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(finished_text="[green]✓"),
               TextColumn("{task.description}", markup=False),
               _elapsed_bar(), TimeElapsedColumn(), TextColumn("[dim]{task.fields[hint]}"))
    # Started on the first step only: when nothing needs building, nothing is drawn.
    bars = Progress(*columns, console=console(stderr=True), refresh_per_second=8)
    current: list[TaskID] = []

    def finish() -> None:
        if current:
            bars.update(current[-1], completed=1)
            bars.stop_task(current[-1])

    def step(line: str) -> None:
        if not current:
            bars.start()
        finish()
        expected = _expected(line)
        hint = f"of ~{expected:.0f} s" if expected else ""
        current.append(bars.add_task(str(line), total=1, hint=hint, expected=expected))

    try:
        yield step
    finally:
        if current:
            finish()
            bars.stop()


def _elapsed_bar() -> Any:
    """A bar column drawn from the task's elapsed time against its total (in seconds)."""
    from rich.progress import ProgressColumn, Task
    from rich.progress_bar import ProgressBar

    class ElapsedBar(ProgressColumn):
        def render(self, task: Task) -> ProgressBar:
            if task.finished:
                return ProgressBar(total=1, completed=1, width=24)
            if not task.fields.get("expected"):
                return ProgressBar(total=None, width=24)  # a short step: a pulse
            total = float(task.fields["expected"])
            return ProgressBar(total=total, completed=min(task.elapsed or 0.0, total * 0.99),
                               width=24)

    return ElapsedBar()

"""Runs on the marketplace: `agentfactory run NAME --input FILE --remote` and `agentfactory runs
list | show ID | cancel ID`.

A remote run is submitted, then followed through its event stream: on a terminal a spinner on
stderr names the run's state; in a pipe each state is one plain line on stderr; stdout gets only
the result (highlighted JSON on a terminal, plain in a pipe, the whole run record with `--json`).
A run that does not succeed is one red line naming its error code and message, exit 1; with
`--json` the record is printed first, so scripts see the error's fields too.

This module is imported only by the commands that need it, so `agentfactory run` without
`--remote` never imports the HTTP client.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from cli.common import client_for, config_for, emit_json, json_option, registry_options
from cli.output import console, plural, print_result_json, show, table
from core.errors import AgentFactoryError
from marketplace.client.http import MarketplaceClient
from marketplace.client.records import Run

__all__ = ["remote_run", "runs"]

_STATES = {
    "queued": "queued", "running": "running", "requeued": "queued again (its worker was lost)",
    "cancel_requested": "cancelling",
}


class RunFailed(AgentFactoryError):
    """A remote run ended in `status` other than succeeded."""

    def __init__(self, run: Run) -> None:
        self.run = run
        error = run.error
        reason = f"{error.code}: {error.message}" if error else run.status
        super().__init__(f"run {run.id} {run.status.replace('_', ' ')}: {reason}")


@contextmanager
def _progress(run_id: str) -> Iterator[Callable[[str], None]]:
    """A receiver for state names: a live spinner on a terminal, plain lines elsewhere."""
    if not sys.stderr.isatty():
        def say(state: str) -> None:
            click.secho(f"run {run_id}: {state}", err=True, fg="cyan")

        yield say
        return
    status = console(stderr=True).status(f"run {run_id}: submitted", spinner="dots")
    with status:
        yield lambda state: status.update(f"run {run_id}: {state}")


def follow(client: MarketplaceClient, run: Run) -> Run:
    """Show `run`'s progress until it is final; the final run."""
    with _progress(run.id) as say:
        shown = run.status
        say(shown)
        for event in client.run_events(run.id):
            state = _STATES.get(event.kind)
            if state is not None and state != shown:
                shown = state
                say(state)
    return client.run(run.id, wait=60)


def remote_run(
    agent: str, task: dict[str, Any], *, url: str | None, token: str | None, as_json: bool,
    timeout_s: float | None,
) -> None:
    """`agentfactory run --remote`: submit, follow, print."""
    with client_for(config_for(url, token)) as client:
        run = follow(client, client.submit_run(agent, task, timeout_s=timeout_s))
    if as_json:
        emit_json(run)
    elif run.status == "succeeded":
        print_result_json(run.result)
    if run.status != "succeeded":
        raise RunFailed(run)


@click.group()
def runs() -> None:
    """List, show and cancel your runs on the marketplace."""


@runs.command("list")
@click.option("--status", type=click.Choice(
    ["queued", "running", "succeeded", "failed", "timed_out", "cancelled"]), default=None)
@click.option("--agent", default=None, help="Only runs of this agent.")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, 100), default=20, show_default=True)
@registry_options
@json_option
def list_runs(status: str | None, agent: str | None, page: int, per_page: int,
              url: str | None, token: str | None, as_json: bool) -> None:
    """Your runs, newest first."""
    with client_for(config_for(url, token)) as client:
        found = client.runs(status=status, agent=agent, page=page, per_page=per_page)
    if as_json:
        emit_json(found)
        return
    if not found.items:
        click.echo("no runs")
        return
    rows = table("ID", "STATUS", "AGENT", "VERSION", "CREATED", "MS")
    for run in found.items:
        ms = run.usage.duration_ms
        rows.add_row(run.id, run.status, run.agent_name or run.agent, run.version or "",
                     (run.created_at or "")[:19], "" if ms is None else f"{ms:.0f}")
    show(rows, f"page {found.page} · {len(found.items)} of {plural(found.total, 'run')}")


@runs.command("show")
@click.argument("run_id")
@registry_options
@json_option
def show_run(run_id: str, url: str | None, token: str | None, as_json: bool) -> None:
    """A run: state, agent and version, timings, usage, then its result or error."""
    with client_for(config_for(url, token)) as client:
        run = client.run(run_id)
    if as_json:
        emit_json(run)
        return
    usage = run.usage
    lines = [
        f"run {run.id}: {run.status}",
        f"agent: {run.agent_name or run.agent} {run.version or ''}".rstrip(),
        f"attempt: {run.attempt}",
        f"created: {run.created_at}  started: {run.started_at}  finished: {run.finished_at}",
    ]
    if usage.duration_ms is not None:
        lines.append(f"duration: {usage.duration_ms:.1f} ms")
    if usage.fuel_used is not None:
        lines.append(f"fuel: {usage.fuel_used}")
    if usage.memory_peak_bytes is not None:
        lines.append(f"memory peak: {usage.memory_peak_bytes} bytes")
    if run.error is not None:
        lines.append(f"error: {run.error.code}: {run.error.message}")
    click.echo("\n".join(lines))
    if run.result is not None:
        print_result_json(run.result)


@runs.command("cancel")
@click.argument("run_id")
@registry_options
@json_option
def cancel_run(run_id: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Cancel a run: a queued one at once, a running one by stopping its worker."""
    with client_for(config_for(url, token)) as client:
        run = client.cancel_run(run_id)
        if run.status == "running":
            run = client.run(run_id, wait=30)
    if as_json:
        emit_json(run)
        return
    click.echo(f"run {run.id}: {run.status}")

"""`agentfactory worker`: execute runs queued on the marketplace's PostgreSQL database.

Start any number of these, on any machines that reach the database, next to `agentfactory serve`
started with `AGENTFACTORY_RUN_ENGINE=procrastinate` (see docs/runs.md). The settings are the
server's (`ServerSettings.from_env()`: database URL, home, template directories, sandbox policy,
`AGENTFACTORY_RUN_*`), so a worker builds its agents exactly as the server would. It prints one
line when it is ready and one per run state change it makes; Ctrl-C (or SIGTERM) stops it, and
the runs it had in flight go back to the queue for another worker.

A database that cannot be reached at start is one red line; one that goes away later is waited
for (the worker reconnects on its own).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import click

from core.errors import AgentFactoryError

if TYPE_CHECKING:
    from runs.remote import RemoteWorker
    from runs.schemas import RunPublic


class NeedsPostgreSQL(AgentFactoryError):
    """The worker was given `url` (None: none), which is not a PostgreSQL database."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        given = "is not set" if not url else f"is {url.split(':', 1)[0]}:..., not PostgreSQL"
        super().__init__(
            f"agentfactory worker takes its runs from PostgreSQL, and AGENTFACTORY_DATABASE_URL "
            f"{given}: set it to postgresql+psycopg://USER:PASSWORD@HOST/DB"
        )


class DatabaseUnreachable(AgentFactoryError):
    """The worker's database at `url` did not answer at start, for `reason`."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach the database {url}: {reason}")


@click.command()
@click.option("--concurrency", type=click.IntRange(1, 256), default=None,
              help="Runs executed at once, each in its own worker process "
                   "(default $AGENTFACTORY_RUN_WORKERS, else 2).")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data directory with the installed agents (default $AGENTFACTORY_HOME).")
def worker(concurrency: int | None, home: Path | None) -> None:
    """Execute queued runs (scale-out: needs AGENTFACTORY_DATABASE_URL on PostgreSQL)."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from marketplace.server.settings import ServerSettings

    settings = ServerSettings.from_env(home=home)
    url = settings.database_url or ""
    if not url.startswith("postgresql"):
        raise NeedsPostgreSQL(settings.database_url)
    shown = make_url(url).render_as_string(hide_password=True)
    os.environ["AGENTFACTORY_HOME"] = str(settings.home)  # read by the installed-agents plugin
    from core.logs import configure_logging, log_format_from_env

    configure_logging(log_format_from_env(), "WARNING")  # JSON lines with correlation ids
    # Our own warnings say, in one line, what procrastinate reports with tracebacks (a lost
    # database, an aborted job).
    logging.getLogger("procrastinate").setLevel(logging.CRITICAL)

    from marketplace.server.app import worker_config
    from registry.db import make_engine
    from runs.remote import RemoteWorker
    from runs.slots import reason
    from runs.store import RunStore

    engine = make_engine(url)
    try:
        try:
            store = RunStore(engine, settings.runs)
            remote = RemoteWorker(
                store, url, worker_config(settings),
                concurrency=concurrency or settings.runs.workers, report=_print_change,
            )
            remote.prepare()
        except SQLAlchemyError as exc:
            raise DatabaseUnreachable(shown, reason(exc)) from None
        click.echo(f"Agent Factory worker {remote.owner}: {remote.concurrency} "
                   f"slot{'s' if remote.concurrency != 1 else ''} on queue 'runs' of {shown}")
        asyncio.run(_serve(remote))
    finally:
        engine.dispose()
    click.echo("worker stopped")


async def _serve(remote: RemoteWorker) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, remote.stop)
    await remote.serve()


def _print_change(run: RunPublic) -> None:
    line = f"run {run.id} {run.status}"
    if run.status == "running":
        line += f" ({run.agent_name}, attempt {run.attempt})"
    elif run.usage.duration_ms is not None and run.status != "queued":
        line += f" in {run.usage.duration_ms:.0f} ms"
    if run.error is not None:
        line += f": {run.error.code}: {run.error.message}"
    click.echo(line)

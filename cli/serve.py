"""`agentfactory serve`: run the marketplace server under uvicorn.

Defaults come from `ServerSettings.from_env()` (so `AGENTFACTORY_HOME` and friends apply); flags
override them. The database is created on first start by the app's lifespan, and the built-in
agents are published then. This module imports the server stack only inside the command, so
`agentfactory --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (default $AGENTFACTORY_HOME or the user data dir).",
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn log level.")
def serve(host: str | None, port: int | None, home: Path | None, log_level: str) -> None:
    """Start the marketplace server (JSON API under /api/v1, /healthz, /metrics)."""
    import uvicorn

    from marketplace.server.app import create_app
    from marketplace.server.settings import ServerSettings

    settings = ServerSettings.from_env(host=host, port=port, home=home)
    # One home for the whole process: the installed-agents plugin reads it from the environment.
    os.environ["AGENTFACTORY_HOME"] = str(settings.home)
    if settings.vet_uploads:
        # Uploads (and, on a new home, the built-in agents) are vetted in the sandbox: build its
        # runner now, with progress, rather than silently inside the first publish.
        from cli.sandbox import show_progress
        from sandbox import Sandbox

        Sandbox(progress=show_progress).ensure_ready()
    app = create_app(settings)
    click.echo(f"Agent Factory marketplace on {settings.url}  (data: {settings.home})")
    click.echo(f"API docs: {settings.url}/api/v1/docs")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        loop="auto",
        http="auto",
        access_log=False,
    )

"""`agentfactory serve`: run the marketplace server under uvicorn.

Defaults come from `ServerSettings.from_env()` (so `AGENTFACTORY_HOME` and friends apply); flags
override them. The database is created on first start by the app's lifespan, and the built-in
agents are published then. This module imports the server stack only inside the command, so
`agentfactory --help` stays fast.

The port is checked before anything is printed or built: a busy port is one red line that
suggests `--port`, never a banner followed by uvicorn's traceback.

`--workers N` (N > 1) runs N API processes under uvicorn's supervisor (which restarts one that
dies), each building its app from the environment (`create_app` as a factory). They share the
database and the blobs; the multi-process guarantees (cache invalidation, one rate budget per
account, one start-up, one embedded run engine, summed metrics) are in docs/deploy.md.

Logs (the server's and uvicorn's) are JSON lines carrying each request's correlation id
(`core.logs`); `AGENTFACTORY_LOG_FORMAT=text` gives plain lines for people.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import click

from core.errors import AgentFactoryError


class CannotListen(AgentFactoryError):
    """`host:port` cannot be bound (in use, not allowed, or not an address of this machine)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(
            f"cannot listen on {host}:{port}: {reason}; choose another port with --port "
            f"(e.g. --port {port + 1 if port < 65535 else 8000})"
        )


def check_port(host: str, port: int) -> None:
    """Bind `host:port` the way uvicorn will (SO_REUSEADDR), then let it go; or raise."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CannotListen(host, port, f"unknown host ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = ("the port is already in use" if exc.errno == errno.EADDRINUSE
                      else exc.strerror or str(exc))
            raise CannotListen(host, port, reason) from None


@click.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to listen on (default 8000).")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (default $AGENTFACTORY_HOME or the user data dir).",
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn log level.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="API processes on this machine, sharing the port, the database and the "
                   "rate budgets (see docs/deploy.md).")
def serve(
    host: str | None, port: int | None, home: Path | None, log_level: str, workers: int
) -> None:
    """Start the marketplace server (JSON API under /api/v1, /healthz, /metrics)."""
    from core.logs import log_format_from_env, logging_config
    from marketplace.server.settings import ServerSettings

    settings = ServerSettings.from_env(host=host, port=port, home=home)
    if workers > 1:
        prepare_workers(settings.home, workers)
        settings = ServerSettings.from_env(host=host, port=port, home=home)
    log_config = logging_config(log_format_from_env(), log_level)
    check_port(settings.host, settings.port)

    import uvicorn

    from marketplace.server.app import create_app

    # One home for the whole process: the installed-agents plugin reads it from the environment.
    os.environ["AGENTFACTORY_HOME"] = str(settings.home)
    if settings.vet_uploads:
        # Uploads (and, on a new home, the built-in agents) are vetted in the sandbox: build its
        # runner now, with progress, rather than silently inside the first publish.
        from cli.sandbox import ready_sandbox

        ready_sandbox()
    app = create_app(settings)  # in every case: a bad setting is one line, before the banner
    click.echo(f"Agent Factory marketplace on {settings.url}  (data: {settings.home})")
    click.echo(f"API docs: {settings.url}/api/v1/docs")
    if workers > 1:
        click.echo(f"{workers} API processes")
    uvicorn.run(
        # Several processes: each one builds its own app from the environment set above.
        app if workers == 1 else "marketplace.server.app:create_app",
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        log_config=log_config,
        loop="auto",
        http="auto",
        access_log=False,
        # The app decides who the client is (AGENTFACTORY_TRUSTED_PROXIES); uvicorn's own
        # rewrite would believe X-Forwarded-For from any local peer.
        proxy_headers=False,
    )


def prepare_workers(home: Path, workers: int) -> None:
    """The environment the `workers` API processes inherit: how many they are (rate budgets
    then live in the database) and prometheus-client's multi-process directory, emptied now,
    before any process writes to it (`marketplace.server.metrics`)."""
    from marketplace.server.metrics import ENV_MULTIPROC_DIR

    os.environ["AGENTFACTORY_PROCESSES"] = str(workers)
    metrics_dir = Path(os.environ.get(ENV_MULTIPROC_DIR) or home / "metrics")
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()
    os.environ[ENV_MULTIPROC_DIR] = str(metrics_dir)

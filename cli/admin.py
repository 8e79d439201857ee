"""`agentfactory admin`: operator commands that work on the server's own database.

Like `serve` and `worker`, this runs where the server's data lives, so it may import the server
side. `admin token ACCOUNT` is the operator's way to an `admin` token: it opens the server's
database directly (`AGENTFACTORY_HOME` / `--home`, `AGENTFACTORY_DATABASE_URL`), so only whoever
already holds the database can mint one; no API operation can. The token is printed once, on
stdout, and only its hash is stored; the trail records a `token.create` by `system`.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

__all__ = ["admin"]


@click.group()
def admin() -> None:
    """Operator commands that work on the server's own database."""


@admin.command("token")
@click.argument("account")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The server's data directory (default $AGENTFACTORY_HOME).")
def admin_token(account: str, home: Path | None) -> None:
    """Mint an admin token for ACCOUNT (an existing publisher) and print it once."""
    from core.context import ENV, acceptable, correlated
    from marketplace.server.settings import ServerSettings
    from registry.service import Registry

    settings = ServerSettings.from_env(home=home)
    # The event carries $AGENTFACTORY_REQUEST_ID like the requests of the other commands.
    with correlated(acceptable(os.environ.get(ENV))), \
            Registry.open(settings.home, settings.database_url) as registry:
        click.echo(registry.operator_token(account))

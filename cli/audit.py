"""`agentfactory audit` (the marketplace's audit trail) and `agentfactory admin token`.

`audit` reads `GET /api/v1/audit` with the user's token: a table on a terminal (plain lines in a
pipe), `--json` for scripts. It shows the events of the token's account, or every event for an
admin token. Set `AGENTFACTORY_REQUEST_ID` to make every command send that id, then
`agentfactory audit --correlation-id ID` lists what those commands did.

`admin token ACCOUNT` is the operator's way to an `admin` token: it opens the server's database
directly (`AGENTFACTORY_HOME` / `--home`, `AGENTFACTORY_DATABASE_URL`), so only whoever already
holds the database can mint one; no API operation can. The token is printed once, on stdout, and
only its hash is stored; the trail records a `token.create` by `system`.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from cli.common import client_for, config_for, emit_json, json_option, registry_options
from cli.output import plural, show, table

__all__ = ["admin", "audit"]


@click.command()
@click.option("--action", default=None, help="Only this action (e.g. package.publish).")
@click.option("--object", "object_", default=None, metavar="ID",
              help="Only this object (a run id, ns/name@version, or ns/name for all of it).")
@click.option("--correlation-id", default=None, metavar="ID", help="Only this request's events.")
@click.option("--since", default=None, metavar="TIME", help="Events at or after (ISO 8601).")
@click.option("--until", default=None, metavar="TIME", help="Events before (ISO 8601).")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, 200), default=50, show_default=True)
@registry_options
@json_option
def audit(action: str | None, object_: str | None, correlation_id: str | None,
          since: str | None, until: str | None, page: int, per_page: int,
          url: str | None, token: str | None, as_json: bool) -> None:
    """The audit trail your token may read, newest first."""
    with client_for(config_for(url, token)) as client:
        found = client.audit(action=action, object=object_, correlation_id=correlation_id,
                             since=since, until=until, page=page, per_page=per_page)
    if as_json:
        emit_json(found)
        return
    if not found.items:
        click.echo("no audit events")
        return
    rows = table("AT", "ACTOR", "ACTION", "OBJECT", "OUTCOME", "CORRELATION ID")
    for event in found.items:
        rows.add_row(event.at[:19].replace("T", " "), event.actor, event.action,
                     f"{event.object_type} {event.object_id}", event.outcome,
                     event.correlation_id or "")
    show(rows, f"page {found.page} · {len(found.items)} of {plural(found.total, 'event')}")


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

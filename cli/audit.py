"""`agentfactory audit`: the marketplace's audit trail.

`audit` reads `GET /api/v1/audit` with the user's token: a table on a terminal (plain lines in a
pipe), `--json` for scripts. It shows the events of the token's account, or every event for an
admin token. Set `AGENTFACTORY_REQUEST_ID` to make every command send that id, then
`agentfactory audit --correlation-id ID` lists what those commands did.
"""

from __future__ import annotations

import click

from cli.common import client_for, config_for, emit_json, json_option, registry_options
from cli.output import plural, show, table

__all__ = ["audit"]


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

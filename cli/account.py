"""`whoami` and `logout`: who the stored token is, and forgetting it.

Invariants: `whoami` asks the server (the token's account, namespaces and scopes are the
registry's, not what `config.json` remembers). `logout` revokes the stored token on the server
when it can (so a copy of `config.json` is worthless afterwards), then removes it from
`config.json` whatever the server said; a token given through `AGENTFACTORY_TOKEN` is not stored
anywhere this command can forget, so it says so instead of pretending.
"""

from __future__ import annotations

import os

import click

from cli.common import client_for, config_for, emit_json, json_option, registry_options
from marketplace.client.config import ENV_TOKEN, read_config_file, update_config_file
from marketplace.client.errors import ApiError, ConnectionFailed, NotLoggedIn


@click.command()
@registry_options
@json_option
def whoami(url: str | None, token: str | None, as_json: bool) -> None:
    """Print the account, namespaces and scopes of the token in use (asked of the server)."""
    config = config_for(url, token)
    if not config.token:
        raise NotLoggedIn("asking who you are")
    with client_for(config) as client:
        me = client.whoami()
    if as_json:
        emit_json({**me.model_dump(), "url": config.url})
        return
    namespaces = ", ".join(me.namespaces) or "none"
    click.echo(f"{me.publisher} at {config.url}")
    click.echo(f"  namespaces: {namespaces}")
    click.echo(f"  token {me.token_id}, scopes: {', '.join(me.scopes)}")


@click.command()
@registry_options
@json_option
def logout(url: str | None, token: str | None, as_json: bool) -> None:
    """Revoke the stored token on the server and forget it on this machine."""
    config = config_for(url, token)
    stored = read_config_file(config.home).get("token")
    secret = config.token
    if not secret:
        raise NotLoggedIn("logging out")
    revoked: str | None = None
    note = ""
    try:
        with client_for(config) as client:
            me = client.whoami()
            client.revoke_token(me.token_id)
            revoked = me.token_id
    except ApiError as exc:
        if exc.status != 401:  # 401: already revoked or unknown, nothing left to revoke
            raise
        note = "the server no longer accepted it"
    except ConnectionFailed as exc:
        note = f"the server could not be reached ({exc.reason}); it is still valid there"
    forgotten = bool(stored) and stored == secret
    if forgotten:
        update_config_file(config.home, token=None)
    result = {"url": config.url, "revoked": revoked, "forgotten": forgotten}
    if as_json:
        emit_json(result)
        return
    head = f"logged out of {config.url}"
    line = f"{head}: token {revoked} revoked" if revoked else f"{head}: token not revoked ({note})"
    click.echo(line + (" and forgotten" if forgotten else ""))
    if os.environ.get(ENV_TOKEN) == secret:
        click.secho(f"note: {ENV_TOKEN} is still set in your environment", fg="yellow", err=True)

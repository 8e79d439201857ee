"""`agentfactory update` and `outdated`, and the consent asked when an upgrade asks for more.

An upgrade that asks for more than the installed version (`marketplace.client.asks`) prints its
difference on stderr, one line per change (`+ tool: http_fetch`, `key: a… → b… (...)`), then
goes on only with `--accept` or a `y` at the prompt, which is offered only when stdin is a
terminal; otherwise it is one red line and exit 1, with nothing installed. Asking for less or
the same is silent. `outdated` downloads and verifies each newer release (never installs it) to
say what it would add.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from cli.common import (
    DownloadBars,
    client_for,
    config_for,
    emit_json,
    json_option,
    registry_options,
    sandbox_build_bar,
)
from cli.output import show, table

if TYPE_CHECKING:
    from marketplace.client.asks import Upgrade

__all__ = ["consent_for", "outdated", "print_upgrade", "update"]

ACCEPT_HELP = ("Accept an upgrade that asks for more than the installed version (new tools, "
               "permissions, capabilities, models, needs, sandbox tier or key).")


def print_upgrade(upgrade: Upgrade) -> None:
    """The difference of `upgrade`, on stderr."""
    click.echo(f"{upgrade.name} {upgrade.old_version} → {upgrade.new_version} asks for more:",
               err=True)
    for change in upgrade.diff.raised:
        click.secho(f"  {change}", fg="yellow", err=True)
    for change in upgrade.diff.lowered:
        click.echo(f"  {change}", err=True)


def consent_for(accept: bool) -> Any:
    """The installer's `consent`: show the difference, then `--accept` or a terminal prompt."""

    def consent(upgrade: Upgrade) -> bool:
        print_upgrade(upgrade)
        if accept:
            return True
        if sys.stdin.isatty():
            return click.confirm("Accept these changes?", default=False, err=True)
        return False

    return consent


@click.command()
@click.argument("names", nargs=-1)
@click.option("--accept", is_flag=True, help=ACCEPT_HELP)
@registry_options
@json_option
def update(names: tuple[str, ...], accept: bool, url: str | None, token: str | None,
           as_json: bool) -> None:
    """Move installed agents NAMES (default: every agent you installed yourself) to their newest
    release. One that asks for more than the installed version is shown and needs --accept."""
    from marketplace.client.errors import NotInstalled
    from marketplace.client.installer import Installer, installed, sandbox_vetter
    from registry.names import normalize_name

    config = config_for(url, token)
    present = {normalize_name(e.name): e for e in installed(config.home)}
    for name in names:
        if normalize_name(name) not in present:
            raise NotInstalled(name)
    wanted = list(names) or [e.name for e in present.values() if e.requested]
    moved: list[Any] = []
    bars = DownloadBars()
    try:
        with client_for(config) as client, sandbox_build_bar() as build_progress:
            installer = Installer(client, config.home, vetter=sandbox_vetter(build_progress),
                                  progress=bars, consent=consent_for(accept))
            current = {e.name: e.version for e in installer.installed()}
            for name in wanted:
                result = installer.install(name)
                moved += [(current.get(e.name), e) for e in result.installed]
                for note in result.notes:
                    click.secho(f"warning: {note}", fg="yellow", err=True)
    finally:
        bars.close()
    if as_json:
        emit_json([{"name": e.name, "from": old, "to": e.version} for old, e in moved])
        return
    if not moved:
        click.echo("everything is up to date")
    for old, entry in moved:
        click.echo(f"updated {entry.name} {old or '(new)'} → {entry.version}")


@click.command()
@registry_options
@json_option
def outdated(url: str | None, token: str | None, as_json: bool) -> None:
    """List installed agents with a newer release, and what each upgrade would add."""
    from core.errors import AgentFactoryError
    from marketplace.client.installer import Installer, installed

    config = config_for(url, token)
    rows: list[dict[str, Any]] = []
    with client_for(config) as client:
        installer = Installer(client, config.home, vetter=_never_vets)
        for entry in installed(config.home):
            try:
                upgrade = installer.preview(entry)
            except AgentFactoryError as exc:
                rows.append({"name": entry.name, "installed": entry.version, "latest": None,
                             "adds": [], "drops": [], "error": str(exc)})
                continue
            if upgrade is not None:
                rows.append({"name": entry.name, "installed": entry.version,
                             "latest": upgrade.new_version,
                             "adds": [str(c) for c in upgrade.diff.raised],
                             "drops": [str(c) for c in upgrade.diff.lowered], "error": None})
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("every installed agent is up to date")
        return
    listing = table("NAME", "INSTALLED", "LATEST", "WOULD ADD", wrap=("WOULD ADD",))
    for row in rows:
        adds = "\n".join(row["adds"]) or "nothing (updates silently)"
        listing.add_row(row["name"], row["installed"], row["latest"] or "?",
                        f"cannot check: {row['error']}" if row["error"] else adds)
    show(listing)


def _never_vets(package: Any) -> Any:
    raise AssertionError("outdated never installs")  # pragma: no cover - preview does not vet

"""The marketplace commands of `agentfactory`: keys, publishing, browsing, installing, reviews.

Each command is imported lazily by `cli.main` and must stay light: no fastapi, sqlmodel or
uvicorn here. Errors are raised as `AgentFactoryError` subclasses; `cli.main.main` prints them
as one red line and exits 1. Every command that prints data accepts `--json`.
"""

from __future__ import annotations

import click

from cli.common import (
    DownloadBars,
    client_for,
    config_for,
    emit_json,
    json_option,
    registry_options,
    sandbox_build_bar,
    stars,
)
from marketplace.client.lockfile import LockEntry
from marketplace.client.records import publisher_of

__all__ = ["info", "install", "list_installed", "rate", "reviews", "search", "uninstall"]


@click.command()
@click.argument("query", required=False, default="")
@click.option("--sort", type=click.Choice(["relevance", "rating", "downloads", "recent"]),
              default="relevance", show_default=True)
@click.option("--capability", default=None, help="Only packages with this capability.")
@click.option("--tool", default=None, help="Only packages using this tool.")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, 100), default=20, show_default=True)
@registry_options
@json_option
def search(query: str, sort: str, capability: str | None, tool: str | None, page: int,
           per_page: int, url: str | None, token: str | None, as_json: bool) -> None:
    """Search the marketplace for QUERY (everything when omitted)."""
    with client_for(config_for(url, token)) as client:
        found = client.search(query, sort=sort, capability=capability, tool=tool, page=page,
                              per_page=per_page)
    if as_json:
        emit_json(found)
        return
    if not found.items:
        click.echo("no packages found")
        return
    for item in found.items:
        click.echo(f"{item.name} {item.latest_version or ''}  {stars(item.rating_mean)}  "
                   f"{item.downloads} downloads\n    {item.summary}")
    click.echo(f"page {found.page} · {len(found.items)} of {found.total}")


@click.command()
@click.argument("name")
@registry_options
@json_option
def info(name: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Show package NAME: versions, rating, signature and vetting."""
    with client_for(config_for(url, token)) as client:
        detail = client.package(name)
        versions = client.versions(name)
    if as_json:
        emit_json({"package": detail, "versions": versions})
        return
    rating = detail.rating
    click.echo(f"{detail.name} {detail.latest_version or ''}\n  {detail.summary}")
    click.echo(f"  publisher: {publisher_of(detail.publisher)}")
    click.echo(f"  rating:    {stars(rating.mean)} ({rating.count} ratings"
               + (f", bayesian {rating.bayesian:.2f})" if rating.bayesian is not None else ")"))
    click.echo(f"  downloads: {detail.downloads}")
    if detail.capabilities:
        click.echo(f"  capabilities: {', '.join(detail.capabilities)}")
    click.echo("  versions:")
    for release in versions:
        reason = release.yank_reason or "no reason given"
        yank_note = f"  YANKED: {reason}" if release.yanked else ""
        click.echo(f"    {release.version}  sha256:{release.digest[:16]}…  "
                   f"key {release.key_id[:12]}{yank_note}")
    click.echo(f"  install: agentfactory install {detail.name}")


def _entry_line(entry: LockEntry) -> str:
    vetting = "vetted" if entry.vetting.passed else "NOT vetted"
    extra = "" if entry.requested else "  (dependency)"
    return (f"{entry.name} {entry.version}  sha256:{entry.digest[:16]}…  key {entry.key_id[:12]}  "
            f"{vetting} ({entry.vetting.examples} examples){extra}")


@click.command()
@click.argument("requirement", required=False)
@click.option("--locked", is_flag=True,
              help="Reinstall exactly what agentfactory.lock records (all, or REQUIREMENT's name).")
@registry_options
@json_option
def install(requirement: str | None, locked: bool, url: str | None, token: str | None,
            as_json: bool) -> None:
    """Install REQUIREMENT (`ns/name`, `ns/name>=1.0`, `ns/name==1.0`): download, verify the
    signature, pin the publisher's key, vet in the sandbox, unpack, record in the lockfile."""
    from marketplace.client.installer import Installer, sandbox_vetter

    if not locked and not requirement:
        raise click.UsageError("give a requirement such as ns/name>=1.0, or --locked")
    config = config_for(url, token)
    bars = DownloadBars()
    try:
        with client_for(config) as client, sandbox_build_bar() as build_progress:
            installer = Installer(client, config.home, vetter=sandbox_vetter(build_progress),
                                  progress=bars)
            if locked:
                names = [requirement] if requirement else []
                result = installer.install_locked(names)
            else:
                assert requirement is not None
                result = installer.install(requirement)
    finally:
        bars.close()
    if as_json:
        emit_json({"installed": result.installed, "unchanged": result.unchanged})
        return
    for entry in result.installed:
        click.echo(f"installed {_entry_line(entry)}")
    for entry in result.unchanged:
        click.echo(f"already installed {_entry_line(entry)}")


@click.command()
@click.argument("name")
@json_option
def uninstall(name: str, as_json: bool) -> None:
    """Remove installed agent NAME (and dependencies nothing else needs)."""
    from core.paths import agentfactory_home
    from marketplace.client.installer import uninstall as remove

    removed = remove(agentfactory_home(), name)
    if as_json:
        emit_json({"removed": removed})
        return
    for entry in removed:
        click.echo(f"uninstalled {entry.name} {entry.version}")


@click.command("list")
@json_option
def list_installed(as_json: bool) -> None:
    """List installed agents (from agentfactory.lock)."""
    from core.paths import agentfactory_home
    from marketplace.client.installer import installed

    entries = installed(agentfactory_home())
    if as_json:
        emit_json(entries)
        return
    if not entries:
        click.echo("no agents installed")
    for entry in entries:
        click.echo(_entry_line(entry))


@click.command()
@click.argument("name")
@click.argument("stars_", metavar="STARS", type=int)
@click.option("--review", default="", help="Review text.")
@click.option("--title", default="", help="Review title.")
@click.option("--version", default=None, help="The version you used.")
@registry_options
@json_option
def rate(name: str, stars_: int, review: str, title: str, version: str | None, url: str | None,
         token: str | None, as_json: bool) -> None:
    """Rate package NAME with STARS (1-5), optionally with a review; replaces your earlier one."""
    with client_for(config_for(url, token)) as client:
        result = client.rate(name, stars_, title=title, body=review, version=version)
    if as_json:
        emit_json(result)
        return
    click.echo(f"rated {name} {'★' * result.stars}{' with a review' if result.body else ''}")


@click.command()
@click.argument("name")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, 100), default=20, show_default=True)
@registry_options
@json_option
def reviews(name: str, page: int, per_page: int, url: str | None, token: str | None,
            as_json: bool) -> None:
    """List the reviews of package NAME."""
    with client_for(config_for(url, token)) as client:
        found = client.reviews(name, page=page, per_page=per_page)
    if as_json:
        emit_json(found)
        return
    if not found.items:
        click.echo(f"no reviews of {name} yet")
    for item in found.items:
        head = f"{'★' * item.stars}{'☆' * (5 - item.stars)} {item.reviewer}"
        click.echo(f"{head}{' on ' + item.version if item.version else ''}: {item.title}".rstrip())
        if item.body:
            click.echo(f"    {item.body}")
        if item.reply:
            click.echo(f"    publisher: {item.reply}")
    click.echo(f"page {found.page} · {len(found.items)} of {found.total}")

"""The marketplace commands of `agentfactory`: keys, publishing, browsing, installing, reviews.

Each command is imported lazily by `cli.main` and must stay light: no fastapi, sqlmodel or
uvicorn here. Errors are raised as `AgentFactoryError` subclasses; `cli.main.main` prints them
as one red line and exits 1. Every command that prints data accepts `--json`.

Retirement: `list` and `install` fetch the registry's signed revocation list (and fall back to
the cached one when the registry cannot be reached; `marketplace.client.retirement`). An
installed release that is deprecated or yanked gets one yellow line saying why and what to do;
a revoked one is refused: one red line, exit 1 (`install --locked` refuses before installing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from cli.output import plural, show, table
from cli.upgrade import ACCEPT_HELP, consent_for
from marketplace.client.config import ClientConfig
from marketplace.client.errors import ApiError, ConnectionFailed
from marketplace.client.http import MarketplaceClient
from marketplace.client.lockfile import LockEntry
from marketplace.client.records import KeyInfo, RatingSummary, Release, publisher_of
from marketplace.client.retirement import (
    Retired,
    Retirements,
    RevocationCache,
    revoked_error,
    warning,
)

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
    rows = table("NAME", "VERSION", "RATING", "DOWNLOADS", "SUMMARY", wrap=("SUMMARY",))
    for item in found.items:
        rows.add_row(item.name, item.latest_version or "", stars(item.rating_mean),
                     str(item.downloads), item.summary)
    show(rows, f"page {found.page} · {len(found.items)} of {plural(found.total, 'package')}")


@click.command()
@click.argument("name")
@registry_options
@json_option
def info(name: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Show package NAME: rating, downloads, and for each version its digest, signing key (and
    whether the registry still trusts it) and the registry's vetting report."""
    with client_for(config_for(url, token)) as client:
        detail = client.package(name)
        versions = client.versions(name)
        keys = {} if as_json else _keys_of(client, versions)
    if as_json:
        emit_json({"package": detail, "versions": versions})
        return
    from rich.table import Table
    from rich.text import Text

    rating = detail.rating
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("publisher", publisher_of(detail.publisher))
    for label, line in _rating_rows(rating):
        facts.add_row(label, line)
    facts.add_row("downloads", str(detail.downloads))
    for label, values in (("capabilities", detail.capabilities), ("tools", detail.tools)):
        if values:
            facts.add_row(label, ", ".join(values))
    if detail.license:
        facts.add_row("license", detail.license)
    if detail.homepage:
        facts.add_row("homepage", detail.homepage)
    for key_id, key in keys.items():
        facts.add_row("signing key", f"{key_id} ({_key_state(key)})")
    retired = any(_retirement_note(release) for release in versions)
    notes = ("",) if retired else ()
    rows = table("VERSION", "UPLOADED", "SHA256", "KEY", "SIGNATURE", "VETTING", *notes,
                 wrap=("VETTING", ""))
    for release in versions:
        rows.add_row(release.version, (release.uploaded_at or "")[:10],
                     f"{release.digest[:16]}…", release.key_id[:12],
                     _signature_state(keys.get(release.key_id)), _vetting_state(release),
                     *((_retirement_note(release),) if retired else ()))
    title = Text.assemble((detail.name, "bold"), f" {detail.latest_version or ''}")
    summary = [f"  {detail.summary}"] if detail.summary else []
    show(title, *summary, facts, f"versions ({len(versions)}):", rows,
         f"install: agentfactory install {detail.name}")


def _rating_rows(rating: RatingSummary) -> list[tuple[str, str]]:
    """The rating facts of `info`: all versions, the latest version, the score explained."""
    if not rating.count:
        rows = [("rating", "no verified ratings yet")]
    else:
        rows = [("rating", f"{stars(rating.mean)} ({plural(rating.count, 'verified rating')}, "
                           "all versions)")]
        latest = rating.latest
        if latest is not None:
            rows.append((f"rating {latest.version}",
                         f"{stars(latest.mean)} ({plural(latest.count, 'rating')})"
                         if latest.count else "no ratings of this version yet"))
    if rating.explanation:
        rows.append(("ranking", rating.explanation))
    if rating.unverified:
        rows.append(("unverified", f"{plural(rating.unverified, 'review')} by people who did "
                                   "not download the version they review (not counted)"))
    return rows


def _retirement_note(release: Release) -> str:
    if release.revoked:
        return f"REVOKED: {release.revoke_reason or 'no reason given'}"
    if release.yanked:
        return f"YANKED: {release.yank_reason or 'no reason given'}"
    if release.deprecated_reason:
        then = f" (use {release.deprecated_successor})" if release.deprecated_successor else ""
        return f"deprecated: {release.deprecated_reason}{then}"
    return ""


def _retirements(config: ClientConfig, *, fetch: bool = True) -> Retirements | None:
    """The registry's verified revocation list, fetched and cached; the cached one when the
    registry cannot be reached (None: never fetched). A list that does not verify is refused."""
    cache = RevocationCache(config.home)
    if fetch:
        try:
            with client_for(config) as client:
                return cache.refresh(client)
        except (ConnectionFailed, ApiError):
            pass  # offline, or a registry without the list: the cached list still answers
    return cache.load()


def _check_retired(entries: list[LockEntry], retirements: Retirements | None) -> None:
    """One yellow line per deprecated or yanked entry; refuse (red, exit 1) revoked ones."""
    if retirements is None:
        return
    found = [(e, r) for e in entries if (r := retirements.of(e)) is not None]
    revoked: list[Retired] = []
    for _entry, retired in found:
        if retired.level == "revoked":
            revoked.append(retired)
        else:
            click.secho(warning(retired), fg="yellow", err=True)
    for retired in revoked[:-1]:
        click.secho(f"error: {revoked_error(retired)}", fg="red", err=True)
    if revoked:
        raise revoked_error(revoked[-1])


def _keys_of(client: MarketplaceClient, versions: list[Release]) -> dict[str, KeyInfo | None]:
    """The registry's record of each key that signed one of `versions` (None: it has none)."""
    keys: dict[str, KeyInfo | None] = {}
    for key_id in dict.fromkeys(release.key_id for release in versions if release.key_id):
        try:
            keys[key_id] = client.key(key_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
            keys[key_id] = None
    return keys


def _key_state(key: KeyInfo | None) -> str:
    if key is None:
        return "unknown to the registry"
    state = "revoked" if key.revoked else "active"
    return f"{state}, rotated from {key.signed_by}" if key.signed_by else state


def _signature_state(key: KeyInfo | None) -> str:
    """What the registry says of a release's signature: it verified every one at upload."""
    if key is None:
        return "key unknown"
    return "key revoked" if key.revoked else "verified"


def _vetting_state(release: Release) -> str:
    """The registry's vetting of `release`, from its status and report."""
    status = release.vetting_status
    report: Any = release.vetting
    if status == "not-run" or not isinstance(report, dict):
        return "not run by the registry" if status == "not-run" else status
    totals = report.get("totals") or {}
    examples = int(totals.get("examples", 0))
    if not examples:
        return f"{status} (no examples)"
    passed = int(totals.get("passed", 0))
    return f"{status} ({passed}/{plural(examples, 'example')})"


def _vetting_of(entry: LockEntry) -> str:
    vetting = "vetted" if entry.vetting.passed else "NOT vetted"
    return f"{vetting} ({plural(entry.vetting.examples, 'example')})"


def _entry_line(entry: LockEntry) -> str:
    extra = "" if entry.requested else "  (dependency)"
    return (f"{entry.name} {entry.version}  sha256:{entry.digest[:16]}…  key {entry.key_id[:12]}  "
            f"{_vetting_of(entry)}{extra}")


@click.command()
@click.argument("requirement", required=False)
@click.option("--locked", is_flag=True,
              help="Reinstall exactly what agentfactory.lock records (all, or REQUIREMENT's name).")
@click.option("--accept", is_flag=True, help=ACCEPT_HELP)
@click.option("--from-bundle", "from_bundle", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Install the agents of a signed bundle file, with no network.")
@click.option("--bundle-signer", default=None, metavar="KEY_ID",
              help="With --from-bundle: require the bundle to be signed by this key.")
@registry_options
@json_option
def install(requirement: str | None, locked: bool, accept: bool, from_bundle: Path | None,
            bundle_signer: str | None, url: str | None, token: str | None,
            as_json: bool) -> None:
    """Install REQUIREMENT (`ns/name`, `ns/name>=1.0`, `ns/name==1.0`): download, verify the
    signature, pin the publisher's key, vet in the sandbox, unpack, record in the lockfile.
    An upgrade that asks for more than the installed version is shown and needs --accept."""
    from marketplace.client.installer import Installer, sandbox_vetter

    if from_bundle is not None:
        from cli.bundle import install_from_bundle

        result = install_from_bundle(from_bundle, bundle_signer, accept)
        _print_installed(result, as_json)
        return
    if not locked and not requirement:
        raise click.UsageError("give a requirement such as ns/name>=1.0, or --locked")
    config = config_for(url, token)
    if locked:  # refuse a revoked locked release before anything is downloaded or unpacked
        from marketplace.client.lockfile import read_lock
        from registry.names import normalize_name

        agents = read_lock(config.home).agents
        wanted = normalize_name(requirement) if requirement else None
        chosen = [e for key, e in agents.items() if wanted is None or key == wanted]
        retirements = _retirements(config)
        if retirements is not None:
            for entry in chosen:
                retired = retirements.of(entry)
                if retired is not None and retired.level == "revoked":
                    raise revoked_error(retired)
    bars = DownloadBars()
    try:
        with client_for(config) as client, sandbox_build_bar() as build_progress:
            installer = Installer(client, config.home, vetter=sandbox_vetter(build_progress),
                                  progress=bars, consent=consent_for(accept))
            if locked:
                names = [requirement] if requirement else []
                result = installer.install_locked(names)
            else:
                assert requirement is not None
                result = installer.install(requirement)
    finally:
        bars.close()
    if _print_installed(result, as_json):
        _check_retired([*result.installed, *result.unchanged], _retirements(config))


def _print_installed(result: Any, as_json: bool) -> bool:
    """Print an install's result; False when it was printed as JSON."""
    for note in result.notes:  # an installed agent whose pinned parent template moved
        click.secho(f"warning: {note}", fg="yellow", err=True)
    if as_json:
        emit_json({"installed": result.installed, "unchanged": result.unchanged})
        return False
    for entry in result.installed:
        click.echo(f"installed {_entry_line(entry)}")
    for entry in result.unchanged:
        click.echo(f"already installed {_entry_line(entry)}")
    return True


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
@click.option("--offline", is_flag=True,
              help="Do not fetch the revocation list; use the cached one.")
@registry_options
@json_option
def list_installed(offline: bool, url: str | None, token: str | None, as_json: bool) -> None:
    """List installed agents (from agentfactory.lock), with a warning for each deprecated or
    yanked one and a refusal (exit 1) for a revoked one."""
    from marketplace.client.installer import installed

    config = config_for(url, token)
    entries = installed(config.home)
    retirements = _retirements(config, fetch=not offline) if entries else None
    if as_json:
        emit_json([{**e.model_dump(), "retired": _retired_json(retirements, e)} for e in entries])
        return
    if not entries:
        click.echo("no agents installed")
        return
    rows = table("NAME", "VERSION", "SHA256", "KEY", "VETTING", "STATUS", "",
                 wrap=("VETTING", ""))
    for entry in entries:
        retired = retirements.of(entry) if retirements is not None else None
        rows.add_row(entry.name, entry.version, f"{entry.digest[:16]}…", entry.key_id[:12],
                     _vetting_of(entry), _status(retirements, retired),
                     "" if entry.requested else "dependency")
    show(rows)
    _check_retired(entries, retirements)


def _status(retirements: Retirements | None, retired: Retired | None) -> str:
    if retirements is None:
        return "not checked"  # no list was ever fetched into this home
    return retired.level if retired is not None else "ok"


def _retired_json(retirements: Retirements | None, entry: LockEntry) -> dict[str, Any] | None:
    retired = retirements.of(entry) if retirements is not None else None
    if retired is None:
        return None
    return {"level": retired.level, "reason": retired.reason, "successor": retired.successor,
            "latest": retired.latest}


class StarsType(click.IntRange):
    """1 to 5, refused before anything is sent with "stars must be 1 to 5"."""

    name = "stars"

    def __init__(self) -> None:
        super().__init__(1, 5)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"stars must be a whole number from 1 to 5, not {value!r}", param, ctx)
        if not 1 <= number <= 5:
            self.fail(f"stars must be 1 to 5, not {number}", param, ctx)
        return number


@click.command()
@click.argument("name")
@click.argument("stars_", metavar="STARS", type=StarsType())
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
        about = f" on {item.version}" if item.version else ""
        unverified = "" if item.verified else " (unverified: not counted)"
        click.echo(f"{head}{about}{unverified}: {item.title}".rstrip())
        if item.body:
            click.echo(f"    {item.body}")
        if item.reply:
            click.echo(f"    publisher: {item.reply}")
    click.echo(f"page {found.page} · {len(found.items)} of {plural(found.total, 'review')}")

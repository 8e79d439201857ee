"""`agentfactory bundle create|show` and the offline half of `install --from-bundle`.

A bundle is made online (`create` talks to the registry and signs with the user's key from
`agentfactory keygen`) and installed offline (`install --from-bundle FILE` never opens a
connection). See `marketplace.client.bundle` for the format and what is checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.common import client_for, config_for, emit_json, json_option, registry_options
from cli.output import plural, show, table

__all__ = ["bundle", "install_from_bundle"]


@click.group()
def bundle() -> None:
    """Signed offline bundles: agents, their dependencies, keys, log proofs, revocations and
    reviews in one file, installable with no network (`install --from-bundle`)."""


@bundle.command()
@click.argument("agents", nargs=-1, required=True)
@click.option("-o", "--output", "output", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The bundle file to write.")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Signing key (default: the one `agentfactory keygen` made).")
@registry_options
@json_option
def create(agents: tuple[str, ...], output: Path, key_path: Path | None, url: str | None,
           token: str | None, as_json: bool) -> None:
    """Write AGENTS (`ns/name`, `ns/name==1.0`; an installed agent keeps its locked version)
    with their dependencies into one signed bundle file."""
    from marketplace.client.bundle import read_bundle
    from marketplace.client.errors import SigningKeyMissing
    from marketplace.client.offline import create_bundle
    from registry.signing import SigningKey

    config = config_for(url, token)
    path = key_path or config.signing_key_path
    if not path.is_file():
        raise SigningKeyMissing(str(path))
    signer = SigningKey.load(path)
    with client_for(config) as client:
        data = create_bundle(client, config.home, agents, signer)
    output.write_bytes(data)
    made = read_bundle(data, str(output))
    if as_json:
        emit_json(_summary(made))
        return
    releases = made.index.releases
    click.echo(f"wrote {output} ({len(data)} bytes): {plural(len(releases), 'release')}, "
               f"signed by key {signer.key_id}")
    for release in releases:
        role = "" if release.requested else "  (dependency)"
        click.echo(f"  {release.name} {release.version}  sha256:{release.digest[:16]}…{role}")


@bundle.command("show")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def show_bundle(file: Path, as_json: bool) -> None:
    """Check FILE (members, digests, bundle signature) and list what it holds."""
    from marketplace.client.bundle import read_bundle

    made = read_bundle(file.read_bytes(), str(file))
    summary = _summary(made)
    if as_json:
        emit_json(summary)
        return
    rows = table("NAME", "VERSION", "SHA256", "KEY", "LOG PROOF", "REVIEWS", "")
    for item in summary["releases"]:
        rows.add_row(item["name"], item["version"], f"{item['digest'][:16]}…",
                     item["key_id"][:12], "yes" if item["log_proof"] else "no",
                     str(item["reviews"]), "" if item["requested"] else "dependency")
    show(f"bundle {file} from {summary['registry']}, signed by key {summary['signer']}", rows,
         f"revocation list: {'yes' if summary['revocations'] else 'no'}; "
         f"release log: {'yes' if summary['log'] else 'no'}")


def _summary(made: Any) -> dict[str, Any]:
    releases = []
    for release in made.index.releases:
        from registry.names import normalize_name

        reviews = made.json_member(f"reviews/{normalize_name(release.name)}.json") or {}
        releases.append({"name": release.name, "version": release.version,
                         "digest": release.digest, "key_id": release.key_id,
                         "publisher": release.publisher, "requested": release.requested,
                         "log_proof": release.inclusion in made.members,
                         "reviews": int(reviews.get("total", 0))})
    return {"registry": made.index.registry, "signer": made.signer.key_id, "releases": releases,
            "log": "log/key.json" in made.members,
            "revocations": "revocations.json" in made.members}


def install_from_bundle(file: Path, signer: str | None, accept: bool) -> Any:
    """`install --from-bundle FILE`: read, check and install with no network."""
    from cli.common import sandbox_build_bar
    from cli.upgrade import consent_for
    from core.paths import agentfactory_home
    from marketplace.client.bundle import read_bundle
    from marketplace.client.installer import sandbox_vetter
    from marketplace.client.offline import install_bundle

    made = read_bundle(file.read_bytes(), str(file))
    if signer is None:
        click.echo(f"bundle signed by key {made.signer.key_id} (not pinned: pass "
                   "--bundle-signer to require it); each release is checked against its "
                   "publisher's signature", err=True)
    with sandbox_build_bar() as build_progress:
        return install_bundle(made, agentfactory_home(), vetter=sandbox_vetter(build_progress),
                              consent=consent_for(accept), signer=signer)

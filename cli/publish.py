"""The publisher's commands: keygen, register, init, build, publish, yank, deprecate, revoke.

Invariants: the private key never leaves the machine (only its public half and signatures are
sent); the token is stored only in `config.json` (mode 0600); `publish` signs exactly the bytes it
uploads, and registers the public key first when the registry does not know it yet.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from cli.common import client_for, config_for, emit_json, json_option, registry_options
from cli.output import plural
from marketplace.client.config import ClientConfig, update_config_file
from marketplace.client.errors import ApiError, KeyFileExists, SigningKeyMissing
from marketplace.client.http import MarketplaceClient
from registry.signing import SigningKey


def _load_key(config: ClientConfig, path: Path | None) -> SigningKey:
    key_path = path or config.signing_key_path
    if not key_path.is_file():
        raise SigningKeyMissing(str(key_path))
    return SigningKey.load(key_path)


def _ensure_key_registered(client: MarketplaceClient, key: SigningKey) -> bool:
    """Upload `key`'s public half unless the registry knows it; True when it was uploaded."""
    try:
        client.add_key(key.public_bytes)
    except ApiError as exc:
        if exc.status == 409:  # already registered: nothing to do
            return False
        raise
    return True


@click.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the key (default: $AGENTFACTORY_HOME/signing.key).")
@click.option("--force", is_flag=True, help="Replace an existing key (it is lost).")
@click.option("--rotate", is_flag=True,
              help="Replace the current key with a new one and register it with a rotation "
                   "statement signed by the current key, so installers accept the change.")
@registry_options
@json_option
def keygen(out: Path | None, force: bool, rotate: bool, url: str | None, token: str | None,
           as_json: bool) -> None:
    """Create an Ed25519 signing key (mode 0600) and print its key id."""
    config = config_for(url, token)
    path = out or config.signing_key_path
    rotated_from = None
    if rotate:
        old = _load_key(config, path)
        new = SigningKey.generate()
        statement = old.sign_rotation(new.public_bytes, config.publisher or "")
        with client_for(config) as client:
            client.add_key(new.public_bytes, rotation_signature=statement, signed_by=old.key_id)
        shutil.copy2(path, path.with_name(f"{path.name}.{old.key_id}.old"))
        rotated_from = old.key_id
    elif path.exists() and not force:
        raise KeyFileExists(str(path))
    else:
        new = SigningKey.generate()
    new.save(path)
    if out is not None:
        update_config_file(config.home, key_path=path.resolve())
    result = {"key_id": new.key_id, "path": str(path), "rotated_from": rotated_from}
    if as_json:
        emit_json(result)
        return
    click.echo(f"key {new.key_id} written to {path}")
    if rotated_from:
        click.echo(f"rotated from {rotated_from} (registered with a signed rotation statement)")


@click.command()
@click.argument("name")
@click.option("--namespace", default=None, help="Namespace to claim (default: NAME).")
@click.option("--email", default=None)
@registry_options
@json_option
def register(name: str, namespace: str | None, email: str | None, url: str | None,
             token: str | None, as_json: bool) -> None:
    """Register publisher NAME with a namespace; store the API token in config.json (0600)."""
    config = config_for(url, None)
    with client_for(config) as client:
        registration = client.register(name, namespace or name, email)
        client.token = registration.token
        key_uploaded = None
        if config.signing_key_path.is_file():
            key = SigningKey.load(config.signing_key_path)
            _ensure_key_registered(client, key)
            key_uploaded = key.key_id
    claimed = registration.publisher.namespaces[0] if registration.publisher.namespaces else (
        namespace or name)
    path = update_config_file(config.home, url=config.url, token=registration.token,
                              publisher=registration.publisher.name, namespace=claimed)
    if as_json:
        emit_json({"publisher": registration.publisher, "namespace": claimed,
                   "config": str(path), "key_id": key_uploaded})
        return
    click.echo(f"registered publisher {registration.publisher.name} with namespace {claimed}")
    click.echo(f"token stored in {path}")
    if key_uploaded:
        click.echo(f"signing key {key_uploaded} registered")


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default=None, help="Package name ns/name (default: <namespace>/<dir>).")
@click.option("--summary", default="", help="One-line summary.")
@click.option("--author", default="", help="Author to list in agent.json.")
@json_option
def init(directory: Path, name: str | None, summary: str, author: str, as_json: bool) -> None:
    """Scaffold a package in DIRECTORY: agent.json, a template, process.py, examples, README."""
    from marketplace.client.scaffold import scaffold

    config = config_for(None, None)
    package = name or f"{config.namespace or 'local'}/{directory.resolve().name}"
    written = scaffold(directory, package, summary=summary, author=author or config.publisher or "")
    if as_json:
        emit_json({"name": package, "files": [str(p) for p in written]})
        return
    click.echo(f"created package {package} in {directory}:")
    for path in written:
        click.echo(f"  {path.relative_to(directory)}")
    click.echo(f"next: agentfactory build {directory} && agentfactory publish {directory}")


def _archive_of(path: Path) -> bytes:
    from registry.archive import build_archive

    return build_archive(path) if path.is_dir() else path.read_bytes()


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path),
                default=".")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Archive path (default: DIRECTORY/.dist/<namespace>-<name>-<version>.zip).")
@json_option
def build(directory: Path, out: Path | None, as_json: bool) -> None:
    """Build the deterministic, validated archive of the package in DIRECTORY."""
    from registry.archive import read_archive

    data = _archive_of(directory)
    package = read_archive(data)
    manifest = package.manifest
    if out is None:
        stem = f"{manifest.namespace}-{manifest.short_name}-{manifest.version}"
        out = directory / ".dist" / f"{stem}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    result = {"name": manifest.name, "version": manifest.version, "path": str(out),
              "digest": package.digest, "size": package.size}
    if as_json:
        emit_json(result)
        return
    click.echo(f"built {manifest.name} {manifest.version}: {out} "
               f"({plural(package.size, 'byte')}, sha256 {package.digest})")


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=".")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Signing key (default: $AGENTFACTORY_HOME/signing.key).")
@registry_options
@json_option
def publish(path: Path, key_path: Path | None, url: str | None, token: str | None,
            as_json: bool) -> None:
    """Sign and upload PATH (a package directory, built first, or an archive)."""
    from registry.archive import read_archive, record_digest

    config = config_for(url, token)
    key = _load_key(config, key_path)
    data = _archive_of(path)
    package = read_archive(data)
    manifest = package.manifest
    signature = key.sign_release(
        package.digest, manifest.name, manifest.version, record_digest(package.files)
    )
    with client_for(config) as client:
        _ensure_key_registered(client, key)
        release = client.publish(data, signature, key.key_id,
                                 filename=f"{manifest.short_name}-{manifest.version}.zip")
    if as_json:
        emit_json(release)
        return
    click.echo(f"published {manifest.name} {release.version} "
               f"(sha256 {release.digest}, key {key.key_id})")


@click.command()
@click.argument("name")
@click.argument("version")
@click.option("--reason", default=None, help="Why (shown to users); required to yank.")
@click.option("--undo", is_flag=True, help="Unyank the release instead.")
@registry_options
@json_option
def yank(name: str, version: str, reason: str | None, undo: bool, url: str | None,
         token: str | None, as_json: bool) -> None:
    """Yank release VERSION of NAME with --reason: installs stop choosing it."""
    if not undo and not (reason and reason.strip()):
        raise click.UsageError("--reason is required to yank a release")
    with client_for(config_for(url, token)) as client:
        if undo:
            client.unyank(name, version)
        else:
            client.yank(name, version, reason or "")
    result = {"name": name, "version": version, "yanked": not undo, "reason": reason}
    if as_json:
        emit_json(result)
        return
    click.echo(f"{'unyanked' if undo else 'yanked'} {name} {version}"
               + (f": {reason}" if reason and not undo else ""))


@click.command()
@click.argument("name")
@click.argument("version")
@click.option("--reason", default=None, help="Why (shown to users); required to deprecate.")
@click.option("--successor", default=None, metavar="NS/NAME",
              help="The package users should move to.")
@click.option("--undo", is_flag=True, help="Take the deprecation back.")
@registry_options
@json_option
def deprecate(name: str, version: str, reason: str | None, successor: str | None, undo: bool,
              url: str | None, token: str | None, as_json: bool) -> None:
    """Deprecate release VERSION of NAME with --reason: it still installs, with a warning."""
    if not undo and not (reason and reason.strip()):
        raise click.UsageError("--reason is required to deprecate a release")
    with client_for(config_for(url, token)) as client:
        if undo:
            release = client.undeprecate(name, version)
        else:
            release = client.deprecate(name, version, reason or "", successor)
    if as_json:
        emit_json(release)
        return
    if undo:
        click.echo(f"undeprecated {name} {version}")
        return
    then = f"; successor {release.deprecated_successor}" if release.deprecated_successor else ""
    click.echo(f"deprecated {name} {version}: {reason}{then}")


@click.command()
@click.argument("name")
@click.argument("version")
@click.option("--reason", required=True, help="Why it must not run (shown to users).")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Signing key (default: $AGENTFACTORY_HOME/signing.key).")
@click.option("--admin", is_flag=True,
              help="Revoke as a registry admin: the registry signs the statement with its key.")
@registry_options
@json_option
def revoke(name: str, version: str, reason: str, key_path: Path | None, admin: bool,
           url: str | None, token: str | None, as_json: bool) -> None:
    """Revoke release VERSION of NAME for good (compromised or malicious): it must not run
    anywhere. The revocation statement is signed with your key (or, with --admin, by the
    registry), and reaches every client through the signed revocation list."""
    from registry.statements import sign_statement, statement_bytes

    if not reason.strip():
        raise click.UsageError("--reason must say why the release is revoked")
    config = config_for(url, token)
    with client_for(config) as client:
        if admin:
            release = client.revoke(name, version, reason)
        else:
            key = _load_key(config, key_path)
            target = next((r for r in client.versions(name) if r.version == version), None)
            if target is None:
                raise ApiError(404, "NotFound", f"release '{name} {version}' not found")
            statement = statement_bytes(name, target.version, target.digest, reason)
            release = client.revoke(name, target.version, reason,
                                    sign_statement(key, statement), key.key_id)
    if as_json:
        emit_json(release)
        return
    signer = "the registry" if admin else "your key"
    click.echo(f"revoked {name} {release.version}: {reason} (statement signed by {signer})")

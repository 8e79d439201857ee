"""`agentfactory log`: audit the registry's public release log.

    agentfactory log verify [--url URL]      fetch the whole log, recompute it, check its head
    agentfactory log dump -o FILE            save the log (key, head, entries) to a file
    agentfactory log verify --file FILE      audit a saved dump, with no network

What an audit checks is `marketplace.client.logaudit`; a failure is one red line naming the
registry and what did not hold (both heads, when history was rewritten), and exit status 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import client_for, config_for, emit_json, json_option, registry_options
from cli.output import plural

__all__ = ["log"]


@click.group()
def log() -> None:
    """Audit the registry's public, append-only release log."""


@log.command()
@click.option("--file", "dump_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Audit this dump (from `agentfactory log dump`) offline.")
@registry_options
@json_option
def verify(dump_file: Path | None, url: str | None, token: str | None, as_json: bool) -> None:
    """Recompute the whole log, check its signed head and that it extends the head this
    machine remembers."""
    from marketplace.client.logaudit import verify_dump, verify_online

    config = config_for(url, token)
    if dump_file is not None:
        report = verify_dump(dump_file, config.home)
    else:
        with client_for(config) as client:
            report = verify_online(client, config.home)
    head = report.head
    if as_json:
        emit_json({
            "source": report.source, "entries": report.entries, "tree_size": head.size,
            "root_hash": head.root.hex(), "key_id": report.key_id,
            "remembered_size": report.remembered.size if report.remembered else None,
        })
        return
    click.echo(f"release log of {report.source} verified: {plural(report.entries, 'entry')}, "
               f"root {head.root.hex()[:16]}… signed by log key {report.key_id}")
    if report.remembered is not None:
        click.echo(f"consistent with the head remembered before (size {report.remembered.size})")


@log.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the dump (JSON).")
@registry_options
def dump(output: Path, url: str | None, token: str | None) -> None:
    """Save the whole log (key, signed head, entries) for an offline audit."""
    from marketplace.client.logaudit import dump as write_dump

    with client_for(config_for(url, token)) as client:
        count = write_dump(client, output)
    click.echo(f"wrote {plural(count, 'entry')} to {output}")

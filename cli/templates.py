"""`agentfactory templates list|show|validate|schema`.

Errors are raised as `AgentFactoryError`s; `cli.main.main` prints them as one red line and exits 1.
`list --json` prints a JSON array whose objects always hold `name`, `version`, `hash` and
`capabilities`; templates that fail to resolve are reported on stderr, not in the array.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from core.errors import TemplateError
from core.factory import AgentFactory
from core.resolved import ResolvedTemplate
from core.template import AgentTemplate


def _factory() -> AgentFactory:
    from core.config import FactorySettings

    return AgentFactory(FactorySettings.from_env())


def _summary(template: ResolvedTemplate, source: str) -> dict[str, Any]:
    return {
        "name": template.name,
        "version": template.version,
        "hash": template.hash,
        "capabilities": list(template.capabilities),
        "description": template.description,
        "extends": template.extends,
        "implementation": template.implementation or template.name,
        "lineage": template.lineage,
        "source": source,
    }


def _print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@click.group()
def templates() -> None:
    """List, show and validate agent templates; print their JSON Schema."""


@templates.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_templates(as_json: bool) -> None:
    """List every template the factory can build, resolved and validated."""
    from cli.main import fail

    with _factory() as factory:
        catalog = factory.templates.catalog()
        rows = []
        for name in sorted(catalog.by_name):
            try:
                template = factory.templates.get(name)
            except TemplateError as exc:
                fail(f"skipped {name}: {exc}")
                continue
            rows.append(_summary(template, catalog.by_name[name].source))
        for source, error in sorted(catalog.errors.items()):
            fail(f"skipped {source}: {error}")
    if as_json:
        _print_json(rows)
        return
    width = max((len(r["name"]) for r in rows), default=4)
    for row in rows:
        caps = ", ".join(row["capabilities"])
        click.echo(f"{row['name']:<{width}}  {row['version']:<8}  {row['hash'][:12]}  {caps}")


@templates.command("show")
@click.argument("name")
def show(name: str) -> None:
    """Print the resolved template NAME as JSON (inheritance applied, hash and lineage added)."""
    with _factory() as factory:
        template = factory.templates.get(name)
    _print_json(template.document())


@templates.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
def validate(path: Path) -> None:
    """Validate a template file, or every template file in a directory.

    Parents named in `extends` are looked up among the files given, then among known templates;
    the resolved result must also pass every validator plugin (e.g. the tool deny-list).
    """
    from cli.main import fail
    from core.inheritance import resolve
    from core.loader import load_template_file, template_files

    if path.is_dir():
        files = template_files(path)
        if not files:
            raise TemplateError(f"{path}: no .json or .json.zst template files")
    elif path.exists():
        files = [path]
    else:
        raise TemplateError(f"{path}: no such file or directory")
    loaded: dict[str, tuple[Path, AgentTemplate]] = {}
    failures: list[TemplateError] = []
    for file in files:
        try:
            template = load_template_file(file)
        except TemplateError as exc:
            failures.append(exc)
            continue
        loaded[template.name] = (file, template)
    with _factory() as factory:
        known = factory.templates.catalog()

        def lookup(name: str) -> AgentTemplate | None:
            return loaded[name][1] if name in loaded else known.lookup(name)

        for name, (file, _) in loaded.items():
            try:
                resolved = resolve(name, lookup).as_resolved()
                reasons = [
                    reason
                    for answer in factory.plugin_manager.hook.agentfactory_validate_template(
                        template=resolved, settings=factory.settings
                    )
                    for reason in answer
                ]
                if reasons:
                    raise TemplateError(f"{file}: refused: {'; '.join(reasons)}")
            except TemplateError as exc:
                failures.append(exc)
                continue
            click.echo(f"ok: {file}: {name} {resolved.version} {resolved.hash}")
    if len(files) == 1 and failures:
        raise failures[0]
    for failure in failures:
        fail(str(failure))
    if failures:
        raise TemplateError(f"{len(failures)} of {len(files)} template files are invalid")


@templates.command("schema")
def schema() -> None:
    """Print the JSON Schema of a template document."""
    from core.template import template_json_schema

    _print_json(template_json_schema())

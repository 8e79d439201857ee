"""`agentfactory run TEMPLATE --input FILE|-`: run one agent on one input and print JSON.

`--remote` hands the run to the marketplace server instead (`cli.runs`, imported only then).
A prompt agent's tokens are written to stderr as the model produces them (docs/models.md).

Input rules: a file holding a JSON object is the task itself; any other content (Markdown,
source code, a spec, a JSON array...) becomes `{"text": <content>}`. `--config` takes a JSON object
passed to the agent as its config. Every failure is an `AgentFactoryError` (one line, exit 1).

An unknown TEMPLATE names the closest known templates ("did you mean ..."); an unknown
`namespace/name` with no close match is a community package that is not installed, and the error
says which `agentfactory install` command would get it. An installed release that the cached
revocation list says is revoked is refused with its reason; a deprecated or yanked one runs,
after one yellow line saying why it should be replaced.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any

import click

from core.errors import AgentFactoryError, AgentInputError, TemplateNotFound


def read_task(source: str) -> dict[str, Any]:
    """The task for input `source` (a path, or `-` for stdin)."""
    if source == "-":
        content = sys.stdin.read()
    else:
        try:
            with open(source, encoding="utf-8") as handle:
                content = handle.read()
        except FileNotFoundError:
            raise AgentInputError(f"input file {source!r} does not exist") from None
        except IsADirectoryError:
            raise AgentInputError(f"input {source!r} is a directory, not a file") from None
        except UnicodeDecodeError:
            raise AgentInputError(f"input file {source!r} is not UTF-8 text") from None
        except OSError as exc:
            raise AgentInputError(f"cannot read input file {source!r}: {exc.strerror}") from None
    try:
        document = json.loads(content)
    except ValueError:
        return {"text": content}
    return document if isinstance(document, dict) else {"text": content}


def parse_config(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise AgentInputError(f"--config is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise AgentInputError(f"--config must be a JSON object, not {type(config).__name__}")
    return config


def _explain_missing(exc: TemplateNotFound) -> AgentFactoryError:
    """`exc`; for an installed package that refused to load (e.g. a file changed since the
    install), that refusal; for a package name asked for directly that is not installed and not a
    likely typo of a known template, the same error telling how to install it."""
    name = exc.name
    if not exc.chain and (refusal := _load_refusal(name)) is not None:
        return refusal
    if exc.chain or exc.close or not _missing_package(name):
        return exc
    return TemplateNotFound(
        name, hint=f"package {name} is not installed: run `agentfactory install {name}` first"
    )


def _load_refusal(name: str) -> AgentFactoryError | None:
    """Why the installed package `name` is not offered by the factory, if it is installed."""
    from marketplace.client.installed import installed_agents

    if "/" not in name:
        return None
    failure = installed_agents().load_error(name)
    if failure is None or isinstance(failure, AgentFactoryError):
        return failure
    return TemplateNotFound(name, hint=f"installed package {name} cannot be loaded: {failure}")


def _warn_retired(implementation: str | None) -> None:
    """One yellow line when the installed package behind the agent is deprecated or yanked
    (from the cached revocation list; a revoked one never loads, see `_load_refusal`)."""
    if not implementation or "/" not in implementation:
        return
    from marketplace.client.installed import installed_agents

    notice = installed_agents().notice(implementation)
    if notice:
        click.secho(notice, fg="yellow", err=True)


def _missing_package(name: str) -> bool:
    """True when `name` is a well-formed package name with no entry in the lockfile."""
    from core.paths import agentfactory_home
    from marketplace.client.lockfile import read_lock
    from registry.names import normalize_name

    if "/" not in name:
        return False
    try:
        key = normalize_name(name)
    except AgentFactoryError:  # not a package name: nothing could install it
        return False
    return key not in read_lock(agentfactory_home()).agents


def _process_streaming(agent: Any, task: dict[str, Any]) -> dict[str, Any]:
    """Run a prompt agent, its tokens written to stderr as the model produces them (the
    result, text and usage, still goes to stdout as JSON)."""
    from models.context import calling
    from models.types import CallContext

    streamed = False

    def show(token: str) -> None:
        nonlocal streamed
        streamed = True
        sys.stderr.write(token)
        sys.stderr.flush()

    try:
        with calling(CallContext(on_token=show)):
            result: dict[str, Any] = agent.process(task)
    finally:
        if streamed:
            sys.stderr.write("\n")
    return result


@click.command()
@click.argument("template")
@click.option(
    "--input", "input_path", required=True, metavar="FILE|-", help="Input file, or - for stdin."
)
@click.option("--config", "config_json", metavar="JSON", help="Agent config as a JSON object.")
@click.option("--remote", is_flag=True,
              help="Run on the marketplace server (a queued run, followed until it ends).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True),
              default=None, metavar="SECONDS", help="With --remote: the run's wall-clock limit.")
@click.option("--json", "as_json", is_flag=True, help="With --remote: print the whole run record.")
@click.option("--url", default=None, metavar="URL", help="With --remote: the marketplace URL.")
@click.option("--token", default=None, metavar="TOKEN", help="With --remote: an API token.")
def run(
    template: str, input_path: str, config_json: str | None, remote: bool,
    timeout_s: float | None, as_json: bool, url: str | None, token: str | None,
) -> None:
    """Run an agent built from TEMPLATE on an input and print the result as JSON.

    With --remote, the marketplace runs it (TEMPLATE may carry a version specifier, e.g.
    'acme/echo>=1.2'): progress goes to stderr, the result to stdout.
    """
    if remote:
        if config_json is not None:
            raise AgentInputError("--config is not supported with --remote")
        from cli.runs import remote_run  # the HTTP client only when it is needed

        remote_run(template, read_task(input_path), url=url, token=token, as_json=as_json,
                   timeout_s=timeout_s)
        return
    if as_json or timeout_s is not None or url or token:
        raise AgentInputError("--json, --timeout, --url and --token go with --remote")
    from cli.commands import invocation_plugin_manager
    from core.config import FactorySettings
    from core.factory import AgentFactory
    from core.paths import cache_home
    from core.template_cache import TemplateDiskCache

    task = read_task(input_path)
    config = parse_config(config_json)
    # One task, then exit: warming other templates (preload) or watching template files (hot
    # reload, which starts a watchdog observer) would only delay the answer.
    settings = replace(FactorySettings.from_env(), preload=[], hot_reload=False)
    # A template whose sources are unchanged since an earlier run is served from the disk cache,
    # without importing pydantic or reading every template (see `core.template_cache`).
    templates = TemplateDiskCache(cache_home() / "templates")
    with AgentFactory(settings, invocation_plugin_manager(), disk_cache=templates) as factory:
        try:
            agent = factory.create_agent(template, config)
        except TemplateNotFound as exc:
            raise _explain_missing(exc) from None
        _warn_retired(agent.implementation)
        try:
            if agent.implementation == "prompt":
                result = _process_streaming(agent, task)
            else:
                result = agent.process(task)
        except ValueError as exc:  # plugins report bad input as ValueError naming the field
            raise AgentInputError(f"{template}: {exc}") from None
    from cli.output import print_result_json  # highlighted on a terminal, plain JSON in a pipe

    print_result_json(result)

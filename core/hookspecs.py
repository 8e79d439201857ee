"""Every hook of Agent Factory, in one place.

A plugin is any object or module whose functions are marked with
`pluggy.HookimplMarker("agentfactory")`; it does not need to import anything else from this
project. Built-in plugins (`plugins/`), installed community agents and operator-written plugins
are all registered through `core.plugins.make_plugin_manager` and `AgentFactory.register_plugin`.

Each hook is documented in `docs/plugins.md`; a test fails when one is missing there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from core.agent import Agent
    from core.config import FactorySettings
    from core.resolved import ResolvedTemplate

PROJECT = "agentfactory"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

TemplateSource = Path | Mapping[str, Any]
"""A template contributed by a plugin: a file or directory path, or the template document itself."""


@hookspec
def agentfactory_templates() -> Sequence[TemplateSource]:
    """Contribute templates. Return paths (files or directories) or template documents."""
    raise NotImplementedError


@hookspec
def agentfactory_implementations() -> Sequence[str]:
    """Name the implementations this plugin provides (the `implementation` field of templates).

    The factory uses the union of these names to refuse, at creation time, an agent whose template
    asks for an implementation nobody provides.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def agentfactory_process(agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
    """Process `task` for `agent` and return the result, or None when the agent is not yours.

    Check `agent.implementation` to decide; the first non-None result wins.
    """
    raise NotImplementedError


@hookspec
def agentfactory_agent_created(agent: Agent) -> None:
    """Called once for each agent the factory creates, after it is fully built."""


@hookspec
def agentfactory_before_process(agent: Agent, task: dict[str, Any]) -> None:
    """Called before a task is processed. Raise an `AgentFactoryError` to refuse the task."""


@hookspec
def agentfactory_after_process(agent: Agent, task: dict[str, Any], result: dict[str, Any]) -> None:
    """Called after a task was processed successfully, with its result."""


@hookspec
def agentfactory_validate_template(
    template: ResolvedTemplate, settings: FactorySettings
) -> Sequence[str]:
    """Vet a resolved template. Return the reasons to refuse it; an empty list accepts it."""
    raise NotImplementedError


@hookspec
def agentfactory_validate_package(manifest: Any, settings: FactorySettings) -> Sequence[str]:
    """Vet a package manifest (`registry.manifest.Manifest`) before it is published or installed.

    Return the reasons to refuse it; an empty list accepts it.
    """
    raise NotImplementedError


@hookspec
def agentfactory_cli_commands() -> Sequence[Any]:
    """Contribute extra `click.Command` objects to the `agentfactory` command line."""
    raise NotImplementedError


@hookspec
def agentfactory_api_routers() -> Sequence[Any]:
    """Contribute extra `fastapi.APIRouter` objects, mounted under `/api/v1/ext`."""
    raise NotImplementedError

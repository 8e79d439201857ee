"""The built-in `prompt` implementation: agents made of a role, prompts and a model, no code.

A template opts in with `"implementation": "prompt"` (docs/models.md); `models.prompt_agent`
does the work and `models.context` says which gateway and whose budget. This module only binds
them to the hooks, and imports nothing heavy: every command builds a plugin manager, and only a
prompt agent's first task imports the model layer.

Checked when a prompt template is loaded (`agentfactory_validate_template`): placeholders are
plain `{field}`s, `model.parameters` are in range, `output_schema` is a valid JSON Schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.hookspecs import hookimpl

if TYPE_CHECKING:
    from core.agent import Agent
    from core.config import FactorySettings
    from core.resolved import ResolvedTemplate

NAME = "prompt"


@hookimpl
def agentfactory_implementations() -> Sequence[str]:
    return [NAME]


@hookimpl
def agentfactory_validate_template(
    template: ResolvedTemplate, settings: FactorySettings
) -> Sequence[str]:
    if template.implementation != NAME:
        return []
    from models.prompt_agent import problems

    return problems(template)


@hookimpl
def agentfactory_process(agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
    if agent.implementation != NAME:
        return None
    from models.context import current_context, current_gateway
    from models.prompt_agent import run, spec_of

    return run(spec_of(agent.template), task, current_gateway(), current_context())

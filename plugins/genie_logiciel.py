"""The `genie_logiciel` built-in agent: static analysis of Python source with `ast`.

The work is done by `plugins.logic.genie_logiciel`, a stdlib-only file that is also published as
the agent package's `process.py` and runs unchanged in the sandbox; this module only binds it to the
plugin hooks. The source is parsed, never executed.

Task: `{"source": str, "max_complexity"?: int}` (`"text"` is accepted for `"source"`, which is what
`agentfactory run genie_logiciel --input file.py` sends). `max_complexity` defaults to the agent's
config, then the template's parameters, then 10.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.errors import AgentInputError
from core.hookspecs import hookimpl
from plugins.logic.genie_logiciel import (
    Analysis,
    ClassInfo,
    FunctionInfo,
    ImportInfo,
    Issue,
    analyze,
    complexity,
    process,
)

if TYPE_CHECKING:
    from core.agent import Agent

__all__ = [
    "NAME",
    "Analysis",
    "ClassInfo",
    "FunctionInfo",
    "ImportInfo",
    "Issue",
    "analyze",
    "complexity",
]

NAME = "genie_logiciel"
# Task fields that fall back to the agent's settings when the task leaves them out.
OPTIONS = ("max_complexity",)


@hookimpl
def agentfactory_implementations() -> Sequence[str]:
    return [NAME]


@hookimpl
def agentfactory_process(agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
    if agent.implementation != NAME:
        return None
    if not isinstance(task, dict):
        raise AgentInputError(f"{NAME}: a task must be a JSON object, not {type(task).__name__}")
    merged = dict(task)
    for key in OPTIONS:
        if key not in merged and (value := agent.setting(key)) is not None:
            merged[key] = value
    try:
        return process(merged)
    except ValueError as exc:
        raise AgentInputError(f"{NAME}: {exc}") from None

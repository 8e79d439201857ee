"""The `documentaliste` built-in agent: index and summarize a text (English or French).

The work is done by `plugins.logic.documentaliste`, a stdlib-only file that is also published as
the agent package's `process.py` and runs unchanged in the sandbox; this module only binds it to the
plugin hooks, so a native run and a sandboxed run give the same result.

Task: `{"text": str, "max_sentences"?: int, "max_keywords"?: int}`. The two options default to
the agent's config, then the template's parameters, then 3 and 10.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.errors import AgentInputError
from core.hookspecs import hookimpl
from plugins.logic.documentaliste import Heading, Keyword, Summary, process, summarize

if TYPE_CHECKING:
    from core.agent import Agent

__all__ = ["NAME", "Heading", "Keyword", "Summary", "summarize"]

NAME = "documentaliste"
# Task fields that fall back to the agent's settings when the task leaves them out.
OPTIONS = ("max_sentences", "max_keywords")


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

"""The built-in task guard: input limits a template opts into through its `hooks` field.

A template's `hooks` maps a plugin's name to that plugin's settings for agents of the template.
This plugin reads `hooks["task_guard"]`:

    "hooks": {"task_guard": {"max_chars": 1000000}}

- `max_chars` (positive integer): no string in the task, at any depth, may be longer. A longer
  one is refused with `AgentInputError` naming the field, before the implementation (or the
  sandbox, for a community agent) spends any time on it.

Invariants: a template without a `task_guard` entry costs one dict lookup per task; settings are
checked when the template is validated (`agentfactory_validate_template`), so a typo is a
refusal at load time, never a guard that silently does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from core.errors import AgentInputError
from core.hookspecs import hookimpl

if TYPE_CHECKING:
    from core.agent import Agent
    from core.config import FactorySettings
    from core.resolved import ResolvedTemplate

NAME = "task_guard"
SETTINGS = ("max_chars",)


def _problems(settings: Any) -> list[str]:
    if not isinstance(settings, dict):
        return [f"hooks.{NAME} must be an object, not {settings!r}"]
    problems = [
        f"hooks.{NAME}.{key}: unknown setting (known: {', '.join(SETTINGS)})"
        for key in settings if key not in SETTINGS
    ]
    limit = settings.get("max_chars")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        problems.append(f"hooks.{NAME}.max_chars must be a positive integer, not {limit!r}")
    return problems


def _strings(task: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """`(field path, string)` of every string in `task` (iterative: tasks may nest deeply)."""
    stack: list[tuple[str, Any]] = [("", task)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))


@hookimpl
def agentfactory_validate_template(
    template: ResolvedTemplate, settings: FactorySettings
) -> Sequence[str]:
    if NAME not in template.hooks:
        return []
    return _problems(template.hooks[NAME])


@hookimpl
def agentfactory_before_process(agent: Agent, task: dict[str, Any]) -> None:
    guard = agent.template.hooks.get(NAME)
    if not guard:
        return
    limit = guard.get("max_chars")
    if limit is None:
        return
    for path, text in _strings(task):
        if len(text) > limit:
            raise AgentInputError(
                f"task field {path!r} has {len(text):,} characters; agent {agent.name!r} accepts "
                f"at most {limit:,} (hooks.{NAME}.max_chars of its template)"
            )

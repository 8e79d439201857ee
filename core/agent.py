"""An agent: a resolved template, a config and the plugin hooks that process its tasks.

Invariants: an agent never changes after it is built (its template is a shared frozen snapshot,
so a template reload affects only agents created afterwards); `id` is unique within the process;
construction does no I/O and no validation beyond what the factory already did, which is what
keeps warm creation in the microseconds.

Orchestrating agents (workflows, supervisors) start other agents with `spawn`, through the factory
that built them; `depth` counts the agents above, and past `MAX_DEPTH` a spawn is refused, so a
workflow or supervisor that (indirectly) runs itself ends with `OrchestrationTooDeep`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

import pluggy

from core.errors import AgentInputError, NoImplementation, OrchestrationTooDeep, PluginError
from core.resolved import ResolvedTemplate

# A per-process prefix plus a counter: unique, sortable and far cheaper than uuid4().
_PREFIX = f"agt-{os.getpid():x}-{os.urandom(3).hex()}-"
_counter = itertools.count(1)

MAX_DEPTH = 8
"""How many levels of agents an agent may be below the first one (`spawn`)."""

Spawn = Callable[[str, "dict[str, Any] | None", int], "Agent"]
"""`(template name, config, depth) -> Agent`: the factory's way of building a spawned agent."""


class Agent:
    """Created by `AgentFactory.create_agent`; call `process(task)` to run it."""

    __slots__ = ("_hook", "_spawn", "config", "depth", "id", "implementation", "template")

    def __init__(
        self,
        template: ResolvedTemplate,
        config: dict[str, Any],
        implementation: str,
        hook: pluggy.HookRelay,
        spawn: Spawn | None = None,
        depth: int = 0,
    ) -> None:
        self.id = f"{_PREFIX}{next(_counter)}"
        self.template = template
        self.config = config
        self.implementation = implementation
        self._hook = hook
        self._spawn = spawn
        self.depth = depth

    @property
    def name(self) -> str:
        """The name of the template this agent was built from."""
        return self.template.name

    def setting(self, key: str, default: Any = None) -> Any:
        """`config[key]`, else the template's `parameters[key]`, else `default`."""
        if key in self.config:
            return self.config[key]
        return self.template.parameters.get(key, default)

    def spawn(self, template_name: str, config: dict[str, Any] | None = None) -> Agent:
        """A new agent for `template_name`, built by this agent's factory one level deeper."""
        if self._spawn is None:
            raise PluginError(f"agent {self.name!r} was not built by a factory: it cannot spawn")
        if self.depth >= MAX_DEPTH:
            raise OrchestrationTooDeep(template_name, self.depth + 1, MAX_DEPTH)
        return self._spawn(template_name, config, self.depth + 1)

    def process(self, task: dict[str, Any]) -> dict[str, Any]:
        """Run before-process hooks, the implementation, then after-process hooks."""
        if not isinstance(task, dict):
            raise AgentInputError(f"a task must be a JSON object, not {type(task).__name__}")
        self._hook.agentfactory_before_process(agent=self, task=task)
        result = self._hook.agentfactory_process(agent=self, task=task)
        if result is None:
            raise NoImplementation(self.template.name, self.implementation)
        if not isinstance(result, dict):
            raise PluginError(
                f"implementation {self.implementation!r} returned {type(result).__name__}, "
                "not a JSON object"
            )
        self._hook.agentfactory_after_process(agent=self, task=task, result=result)
        return result

    def __repr__(self) -> str:
        return f"<Agent {self.id} {self.template.name}@{self.template.version}>"

"""Binding a built-in agent's stdlib-only logic to the plugin hooks.

Each built-in agent keeps its work in `plugins/logic/<name>.py`, a file that also ships as the
`process.py` of the agent's published package and runs unchanged in the sandbox. A `NativeAgent`
runs that same `process` in-process, so a native run and a sandboxed run give the same result.
Options a task leaves out fall back to the agent's config, then its template's parameters.

A `NativeAgent` names its logic module and imports it on the first task it processes: every
process that builds a plugin manager registers every built-in agent, and importing all four
logic files (compiling their regular expressions and dataclasses) would cost each command tens
of milliseconds for agents it does not run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from core.errors import AgentInputError
from core.hookspecs import hookimpl

if TYPE_CHECKING:
    from core.agent import Agent

Process = Callable[[dict[str, Any]], dict[str, Any]]


class NativeAgent:
    """The plugin of one built-in agent: implementation `name`, served by the `process` function
    of module `logic` (imported on first use)."""

    def __init__(self, name: str, logic: str, options: Sequence[str] = ()) -> None:
        self.name = name
        self.logic = logic
        self.options = tuple(options)
        self._process: Process | None = None

    def process(self, task: dict[str, Any]) -> dict[str, Any]:
        """The logic module's `process(task)`. A method, not a property: pluggy reads every
        attribute of a plugin when registering it, which would import the module."""
        if self._process is None:
            self._process = importlib.import_module(self.logic).process
        return self._process(task)

    @hookimpl
    def agentfactory_implementations(self) -> Sequence[str]:
        return [self.name]

    @hookimpl
    def agentfactory_process(self, agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
        if agent.implementation != self.name:
            return None
        merged = dict(task)  # `Agent.process` has checked that the task is a JSON object
        for key in self.options:
            if key not in merged and (value := agent.setting(key)) is not None:
                merged[key] = value
        try:
            return self.process(merged)
        except ValueError as exc:  # the logic files report bad input as ValueError
            raise AgentInputError(f"{self.name}: {exc}") from None

    def __repr__(self) -> str:
        return f"<NativeAgent {self.name}>"

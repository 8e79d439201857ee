"""The `hardware` built-in agent: parse a hardware spec sheet and check it against requirements.

The work is done by `plugins.logic.hardware`, a stdlib-only file that is also published as the
agent package's `process.py` and runs unchanged in the sandbox; this module only binds it to the
plugin hooks. Unit conventions (RAM in GiB, drives in decimal TB) are documented there.

Task: `{"text": str, "requirements"?: {"min_ram_gb": ..., "min_cores": ..., "min_disk_tb": ...}}`.
When the task has no `requirements`, those of the agent's config or template parameters apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.errors import AgentInputError
from core.hookspecs import hookimpl
from plugins.logic.hardware import (
    REQUIREMENTS,
    Check,
    Component,
    HardwareReport,
    analyze,
    process,
    size_to_bytes,
)

if TYPE_CHECKING:
    from core.agent import Agent

__all__ = [
    "NAME",
    "REQUIREMENTS",
    "Check",
    "Component",
    "HardwareReport",
    "analyze",
    "size_to_bytes",
]

NAME = "hardware"
# Task fields that fall back to the agent's settings when the task leaves them out.
OPTIONS = ("requirements",)


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

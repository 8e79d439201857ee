"""The `security_analyst` built-in agent: find secrets and personal data, return masked text.

The work is done by `plugins.logic.security_analyst`, a stdlib-only file that is also published as
the agent package's `process.py` and runs unchanged in the sandbox; this module only binds it to
the plugin hooks. The masked text never contains a detected secret.

Task: `{"text": str, "phones"?: bool, "severity_threshold"?: str, "max_findings"?: int}`; each
option the task leaves out comes from the agent's config, then the template's parameters
(`phones`, phone-number detection, is off by default because it is noisy).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.errors import AgentInputError
from core.hookspecs import hookimpl
from plugins.logic.security_analyst import (
    Finding,
    ScanResult,
    iban_valid,
    luhn_valid,
    process,
    scan,
)

if TYPE_CHECKING:
    from core.agent import Agent

__all__ = ["NAME", "Finding", "ScanResult", "iban_valid", "luhn_valid", "scan"]

NAME = "security_analyst"
# Task fields that fall back to the agent's settings when the task leaves them out.
OPTIONS = ("phones", "severity_threshold", "max_findings")


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

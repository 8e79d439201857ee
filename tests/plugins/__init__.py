"""Tests of the built-in agent plugins, and the helpers they share: a stand-in agent and a
sandboxed run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from core.agent import Agent

ROOT = Path(__file__).resolve().parents[2]


def run_in_sandbox(name: str, task: dict[str, Any]) -> Any:
    """Run `plugins/logic/<name>.py` as a published package's `process.py` in the sandbox."""
    from sandbox import Sandbox, TaskStatus

    source = (ROOT / "plugins" / "logic" / f"{name}.py").read_text(encoding="utf-8")
    result = Sandbox().run_one(source, task)
    assert result.status is TaskStatus.OK, result.error
    return result.value


@dataclass
class StandInAgent:
    """Just what a plugin reads from an agent: its implementation and its settings."""

    implementation: str
    config: dict[str, Any] = field(default_factory=dict)

    def setting(self, key: str, default: Any = None) -> Any:
        return self.config.get(key, default)


def stand_in(implementation: str, config: dict[str, Any] | None = None) -> Agent:
    """An object a plugin hook accepts as its `agent`."""
    return cast("Agent", StandInAgent(implementation, config or {}))

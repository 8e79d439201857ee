"""Typed records crossing the sandbox boundary: what goes in (`AgentSource`) and what comes out
(`TaskResult`, one per task, whatever happened inside)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sandbox.errors import InvalidAgentSource


@dataclass(frozen=True)
class AgentSource:
    """An agent's Python files (posix path -> source) and its entry `"file.py:function"`."""

    files: dict[str, str]
    entry: str = "process.py:process"

    def __post_init__(self) -> None:
        path, sep, function = self.entry.partition(":")
        if not sep or not function.isidentifier() or not path.endswith(".py"):
            raise InvalidAgentSource(self.entry, "entry must look like 'file.py:function'")
        if path not in self.files:
            raise InvalidAgentSource(self.entry, f"no file {path!r} among {sorted(self.files)}")
        for name in self.files:
            if name.startswith("/") or ".." in name.split("/") or "\\" in name:
                raise InvalidAgentSource(name, "file paths must be relative posix paths")

    @classmethod
    def of(cls, source: str | AgentSource) -> AgentSource:
        """Wrap a single source string as `process.py` with entry `process`."""
        if isinstance(source, AgentSource):
            return source
        return cls({"process.py": source})


class TaskStatus(enum.StrEnum):
    OK = "ok"
    AGENT_ERROR = "agent_error"
    TIMEOUT = "timeout"
    OUT_OF_FUEL = "out_of_fuel"
    OUT_OF_MEMORY = "out_of_memory"
    OUTPUT_TOO_LARGE = "output_too_large"
    BAD_OUTPUT = "bad_output"
    BUDGET_EXCEEDED = "budget_exceeded"
    """A model call of the task passed a budget (set by the host, `sandbox.plugin`)."""


@dataclass(frozen=True)
class TaskResult:
    """The outcome of one task. `value` is set only when `status` is ok; `error` (one line) and
    `traceback` (agent frames only) describe every other status."""

    status: TaskStatus
    value: Any = None
    error: str = ""
    traceback: str = ""
    stdout: str = ""
    fuel_used: int = 0
    memory_peak_bytes: int | None = None
    """Peak Python heap (tracemalloc) when memory tracing was asked for, else None."""
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is TaskStatus.OK

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status.value}
        if self.ok:
            data["value"] = self.value
        else:
            data["error"] = self.error
            if self.traceback:
                data["traceback"] = self.traceback
        if self.stdout:
            data["stdout"] = self.stdout
        data["fuel_used"] = self.fuel_used
        data["memory_peak_bytes"] = self.memory_peak_bytes
        data["duration_ms"] = round(self.duration_ms, 3)
        return data

    def raise_for_status(self, agent: str = "agent") -> Any:
        """Return `value` when ok; otherwise raise the matching `sandbox.errors` error."""
        if self.ok:
            return self.value
        from sandbox import errors

        kinds: dict[TaskStatus, type[errors.AgentRunError]] = {
            TaskStatus.AGENT_ERROR: errors.AgentFailed,
            TaskStatus.TIMEOUT: errors.AgentTimeout,
            TaskStatus.OUT_OF_FUEL: errors.AgentOutOfFuel,
            TaskStatus.OUT_OF_MEMORY: errors.AgentOutOfMemory,
            TaskStatus.OUTPUT_TOO_LARGE: errors.AgentOutputTooLarge,
            TaskStatus.BAD_OUTPUT: errors.AgentBadOutput,
            TaskStatus.BUDGET_EXCEEDED: errors.AgentBudgetExceeded,
        }
        raise kinds[self.status](self, agent)

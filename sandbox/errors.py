"""Errors of the sandbox.

Two families, both derived from `core.errors.AgentFactoryError` so the CLI prints them as one line:

- `SandboxError`: the sandbox itself could not do its job (runner build failed, bad source).
- `AgentRunError`: the sandbox worked and the *agent* failed or was stopped by a limit. One
  subclass per non-ok `TaskStatus`; each carries the `TaskResult` that caused it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import AgentFactoryError

if TYPE_CHECKING:
    from sandbox.results import TaskResult


class SandboxError(AgentFactoryError):
    """The sandbox could not run the code at all."""


class RunnerBuildError(SandboxError):
    """Building or compiling the runner component failed. `step` names the failing step."""

    def __init__(self, step: str, detail: str) -> None:
        self.step = step
        self.detail = detail
        super().__init__(f"sandbox runner build failed while {step}: {detail}")


class InvalidAgentSource(SandboxError):
    """The source given to the sandbox is malformed (e.g. an entry naming no file)."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"invalid agent source {source!r}: {reason}")


class SandboxWorkerError(SandboxError):
    """A sandbox worker process could not be started (a host problem, never the agent's)."""

    def __init__(self, pid: int, reason: str) -> None:
        self.pid = pid
        self.reason = reason
        super().__init__(f"sandbox worker process {pid} could not start: {reason}")


class VettingError(SandboxError):
    """A package could not be vetted (not a failed example: the package is unusable)."""

    def __init__(self, package: str, reason: str) -> None:
        self.package = package
        self.reason = reason
        super().__init__(f"cannot vet {package}: {reason}")


class AgentRunError(AgentFactoryError):
    """The agent ran in the sandbox and did not produce a usable result."""

    what = "failed"

    def __init__(self, result: TaskResult, agent: str = "agent") -> None:
        self.result = result
        self.agent = agent
        detail = f": {result.error}" if result.error else ""
        super().__init__(f"{agent} {self.what} in the sandbox{detail}")


class AgentFailed(AgentRunError):
    what = "raised an error"


class AgentTimeout(AgentRunError):
    what = "ran past its deadline"


class AgentOutOfFuel(AgentRunError):
    what = "ran out of fuel"


class AgentOutOfMemory(AgentRunError):
    what = "ran out of memory"


class AgentOutputTooLarge(AgentRunError):
    what = "produced too much output"


class AgentBadOutput(AgentRunError):
    what = "returned a result that is not JSON"


class AgentBudgetExceeded(AgentRunError):
    what = "passed a model budget"

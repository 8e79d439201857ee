"""Errors of the run service.

Every one is an `AgentFactoryError` carrying its offending value; the API edge turns them into
problems (`RunNotFound` is a registry `NotFound`, so a 404; `QuotaExceeded` becomes a 429 with
`Retry-After`), the CLI into one red line.
"""

from __future__ import annotations

from core.errors import AgentFactoryError
from registry.errors import Conflict, NoMatchingRelease, NotFound


class RunError(AgentFactoryError):
    """Root of the run service's deliberate errors."""


class RunNotFound(NotFound):
    """No run `run_id`, or not one of the caller's: both answer the same, so another account's
    run ids cannot be probed."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__("run", run_id)


class IdempotencyConflict(Conflict):
    """`key` was used before by this account for a different request."""

    def __init__(self, key: str, run_id: str) -> None:
        self.key = key
        self.run_id = run_id
        super().__init__(
            f"idempotency key {key!r} was used for run {run_id} with another agent or input"
        )

    def __reduce__(self) -> tuple[type[IdempotencyConflict], tuple[str, str]]:
        return type(self), (self.key, self.run_id)  # it crosses to the API from the engine


class QuotaExceeded(RunError):
    """The account has `limit` runs of `kind` ("concurrent" or "hourly") already; a new one may
    be accepted after `retry_after` seconds."""

    def __init__(self, kind: str, limit: int, retry_after: float) -> None:
        self.kind = kind
        self.limit = limit
        self.retry_after = retry_after
        runs = "run" if limit == 1 else "runs"
        what = "queued or running" if kind == "concurrent" else "in the last hour"
        super().__init__(f"quota reached: {limit} {runs} {what}")

    def __reduce__(self) -> tuple[type[QuotaExceeded], tuple[str, int, float]]:
        return type(self), (self.kind, self.limit, self.retry_after)


class EngineUnavailable(RunError):
    """The run engine's process did not answer a submission (it died, or is starting again):
    whether the run was created is unknown, so the client should retry with its idempotency
    key."""


class NoMatchingAgentVersion(NoMatchingRelease):
    """The agent the factory offers is `version`, which the run's specifier does not allow."""

    def __init__(self, name: str, specifier: str, version: str) -> None:
        self.version = version
        super().__init__(name, specifier)
        self.args = (f"{name} {version} does not match {specifier} (the server offers only "
                     f"{version})",)


class BadAgentSpec(RunError):
    """`spec` is not an agent name optionally followed by a PEP 440 specifier."""

    def __init__(self, spec: str, reason: str) -> None:
        self.spec = spec
        self.reason = reason
        super().__init__(f"agent {spec!r}: {reason}")


class RunWorkerError(RunError):
    """A run worker process could not be started (a host problem, never the agent's)."""

    def __init__(self, pid: int | None, reason: str) -> None:
        self.pid = pid
        self.reason = reason
        super().__init__(f"run worker process {pid} could not start: {reason}")

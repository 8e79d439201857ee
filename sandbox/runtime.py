"""Run agent code inside the runner component: `Sandbox.run(source, tasks) -> list[TaskResult]`.

Invariants:

- `Sandbox.run` returns one `TaskResult` per task, in order, whatever the guest does: traps,
  blocking host calls, crashes and hostile output all end as typed statuses. It raises only for
  bad *host-side* input (source, non-JSON task) or when the sandbox itself cannot work
  (`SandboxError`: the runner cannot be built, a worker process cannot be started).
- Isolation `process` (the default, for every untrusted agent) runs tasks in warm worker
  processes (`sandbox.pool`) that are killed when a task overruns its deadline by a small grace;
  isolation `in-process` runs them in this process, where a guest blocked in a host call holds
  the calling thread until the call returns. Both use the same engine (`sandbox.engine`) and the
  same checks on guest output (`sandbox.outcome`).
- Every task gets a fresh wasm instance unless the caller passes `reuse_instance=True` (same
  source, same user): then tasks of that call share one instance.
"""

from __future__ import annotations

import enum
import json
import reprlib
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from sandbox import build
from sandbox.engine import Engine, RunRequest
from sandbox.errors import InvalidAgentSource, SandboxError
from sandbox.host_models import ModelHost
from sandbox.limits import SandboxLimits
from sandbox.outcome import finish
from sandbox.pool import WorkerPool, shared_pool
from sandbox.results import AgentSource, TaskResult


class Isolation(enum.StrEnum):
    PROCESS = "process"
    """Warm worker processes, killed at deadline + grace: the default for untrusted code."""
    IN_PROCESS = "in-process"
    """This process: no backstop for blocking host calls (trusted or test code only)."""


class _RunCounts:
    """Results of every sandbox run in this process, by status (for `/metrics`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, results: Iterable[TaskResult]) -> None:
        with self._lock:
            for result in results:
                key = result.status.value
                self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


_run_counts = _RunCounts()


def run_counts() -> dict[str, int]:
    """How many tasks this process ran in the sandbox, by `TaskStatus` value ("ok", "timeout",
    ...), whichever `Sandbox` ran them."""
    return _run_counts.snapshot()


class Sandbox:
    """Runs untrusted `process(task)` code in the WebAssembly runner.

    Creating a Sandbox is cheap. With `Isolation.PROCESS` it uses `pool` if given (the caller
    owns and closes it), else the process-wide pool (`sandbox.pool.shared_pool`, closed at
    exit). The runner is built (first use on this machine) or loaded from the cache on the first
    `run` or `ensure_ready`.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        progress: build.Progress | None = None,
        isolation: Isolation | str = Isolation.PROCESS,
        pool: WorkerPool | None = None,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.progress = progress
        try:
            self.isolation = Isolation(isolation)
        except ValueError:
            choices = ", ".join(i.value for i in Isolation)
            raise SandboxError(
                f"unknown sandbox isolation {isolation!r} (one of {choices})"
            ) from None
        self._pool = pool

    @property
    def pool(self) -> WorkerPool:
        return self._pool or shared_pool()

    def ensure_ready(self) -> None:
        """Build or load the compiled runner now, and start a worker (otherwise this happens on
        the first run)."""
        if self.isolation is Isolation.IN_PROCESS:
            Engine.shared(self.progress)
        else:
            self.pool.warm(self.progress)

    def run(
        self,
        source: str | AgentSource,
        tasks: Iterable[Mapping[str, Any]],
        *,
        limits: SandboxLimits | None = None,
        reuse_instance: bool = False,
        trace_memory: bool = False,
        host: ModelHost | None = None,
    ) -> list[TaskResult]:
        """Run `source`'s entry on each task; one result per task, in order.

        `reuse_instance` runs the tasks in one instance (faster; globals persist between these
        tasks). `trace_memory` reports the peak Python heap per task (slower). `host` answers
        the guest's model calls (`sandbox.host_models`; none: every call is refused).
        """
        agent = AgentSource.of(source)
        limits = limits or self.limits
        texts = tuple(_task_text(task) for task in tasks)
        if not texts:
            return []
        request = RunRequest(agent.files, agent.entry, texts, limits, reuse_instance, trace_memory)
        results: list[TaskResult] = []
        try:
            if self.isolation is Isolation.IN_PROCESS:
                engine = Engine.shared(self.progress)
                for step in engine.execute(request, host):
                    results.append(finish(step, limits.max_output_bytes))
            else:
                pool = self.pool
                pool.prepare(self.progress)
                results = pool.run(request, host)
        finally:
            _run_counts.add(results)
        return results

    def run_one(
        self, source: str | AgentSource, task: Mapping[str, Any], **options: Any
    ) -> TaskResult:
        """Run one task in a fresh instance."""
        return self.run(source, [task], **options)[0]


def _task_text(task: Mapping[str, Any]) -> str:
    if not isinstance(task, Mapping):
        raise InvalidAgentSource(reprlib.repr(task), "a task must be a JSON object")
    try:
        return json.dumps(task, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidAgentSource(reprlib.repr(task), f"task is not JSON: {exc}") from exc

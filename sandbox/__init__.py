"""The WebAssembly sandbox for untrusted agent code: run, vet, and plug sandboxed agents in."""

from sandbox.errors import AgentRunError, SandboxError
from sandbox.limits import SandboxLimits
from sandbox.pool import WorkerPool
from sandbox.results import AgentSource, TaskResult, TaskStatus
from sandbox.runtime import Isolation, Sandbox, run_counts

__all__ = [
    "AgentRunError",
    "AgentSource",
    "Isolation",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "TaskResult",
    "TaskStatus",
    "WorkerPool",
    "run_counts",
]

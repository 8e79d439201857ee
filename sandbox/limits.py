"""Resource limits for one sandboxed task.

Every limit applies per task: fuel is re-armed before loading the agent and before each call; the
deadline runs from the task's start and covers loading the agent into a fresh instance and the
call (the epoch stops guest code at it; the worker process running a guest blocked in a host call
is killed shortly after it, see `sandbox.pool`); memory is the cap of the guest's linear memory
(the interpreter's own ~20 MB included); output counts both the JSON result and what the agent
prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sandbox.errors import SandboxError

EPOCH_TICK_S = 0.01
"""How often the engine's epoch advances; the wall-clock deadline is rounded up to this."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Limits of one task. Defaults suit a short text-processing agent."""

    fuel: int = 10_000_000_000
    """WebAssembly fuel (≈ instructions); about 2-10 s of pure-Python work on a fast core."""
    memory_bytes: int = 256 * 1024 * 1024
    """Cap of the guest's linear memory, interpreter snapshot included."""
    timeout_s: float = 5.0
    """Wall-clock deadline per task, loading the agent included."""
    max_output_bytes: int = 1024 * 1024
    """Cap of the JSON result and, separately, of printed output."""

    def __post_init__(self) -> None:
        for name in ("fuel", "memory_bytes", "max_output_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise SandboxError(f"sandbox limit {name} must be a positive integer: {value!r}")
        if not (isinstance(self.timeout_s, int | float) and 0 < self.timeout_s < 86_400):
            raise SandboxError(f"sandbox limit timeout_s must be in (0, 86400): {self.timeout_s!r}")

    @property
    def epoch_ticks(self) -> int:
        """The deadline in epoch ticks, at least one."""
        return max(1, math.ceil(self.timeout_s / EPOCH_TICK_S))

"""Runs: agents as a service. A run is one task for one agent, submitted, queued, executed by a
killable worker process and recorded (pinned version, result or typed error, timings, usage).

`RunStore` keeps runs and their events in the registry's database; a `RunEngine` executes them
(`LocalEngine`, the embedded default, runs worker processes on this machine); `RunWatch` wakes
whoever waits for a run to change. See docs/runs.md.
"""

from runs.engine import LocalEngine, RunEngine
from runs.errors import QuotaExceeded, RunError, RunNotFound
from runs.schemas import FINAL, NewRun, Outcome, RunEventPublic, RunPage, RunPublic
from runs.service import RunService
from runs.settings import RunSettings
from runs.store import RunStore
from runs.watch import RunWatch
from runs.worker import WorkerConfig

__all__ = [
    "FINAL",
    "LocalEngine",
    "NewRun",
    "Outcome",
    "QuotaExceeded",
    "RunEngine",
    "RunError",
    "RunEventPublic",
    "RunNotFound",
    "RunPage",
    "RunPublic",
    "RunService",
    "RunSettings",
    "RunStore",
    "RunWatch",
    "WorkerConfig",
]

"""Run agent code inside the runner component: `Sandbox.run(source, tasks) -> list[TaskResult]`.

Invariants:

- One engine, one compiled runner and one epoch ticker per process (`_Runtime`), created on first
  use; the ticker is a daemon thread advancing the epoch every `EPOCH_TICK_S`.
- Every task gets a fresh `Store` and instance unless the caller passes `reuse_instance=True`
  (same source, same user): then tasks share one instance, and module globals the agent changes
  are visible to its later tasks in that call, never to another call.
- Fuel and the epoch deadline are re-armed before loading and before every task, so limits are
  per task. A trap kills the instance; the next task gets a new one.
- The guest sees no directory, no environment, no arguments, no network and an empty stdin; its
  stdout/stderr go nowhere (the runner captures `print` itself, capped).
- Every Store is closed in a `finally`. Whatever the guest does, `run` returns one `TaskResult`
  per task; it raises only for bad *host-side* input (source, non-JSON task).
"""

from __future__ import annotations

import atexit
import json
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import wasmtime
from wasmtime import component as wasm_component

from sandbox import build
from sandbox.errors import InvalidAgentSource, SandboxError
from sandbox.limits import EPOCH_TICK_S, SandboxLimits
from sandbox.results import AgentSource, TaskResult, TaskStatus

_TRACEBACK_CAP = 16_000
_NOT_STARTED = TaskResult(TaskStatus.AGENT_ERROR, error="the runner could not be started")


class _Runtime:
    """The process-wide engine, compiled runner, linker and epoch ticker."""

    _instance: _Runtime | None = None
    _guard = threading.Lock()

    def __init__(self, progress: build.Progress | None) -> None:
        self.engine = build.make_engine()
        self.component = build.load_or_build(self.engine, progress)
        self.linker = wasm_component.Linker(self.engine)
        self.linker.add_wasip2()
        self.instantiate_lock = threading.Lock()
        self._stop = threading.Event()
        ticker = threading.Thread(target=self._tick, name="sandbox-epoch", daemon=True)
        ticker.start()
        atexit.register(self._stop.set)

    def _tick(self) -> None:
        while not self._stop.wait(EPOCH_TICK_S):
            self.engine.increment_epoch()

    @classmethod
    def get(cls, progress: build.Progress | None = None) -> _Runtime:
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls(progress)
            return cls._instance


def _trap_status(exc: Exception) -> tuple[TaskStatus, str]:
    """Map a wasmtime trap to a status and a one-line reason."""
    text = str(exc).strip()
    last = text.splitlines()[-1].strip() if text else type(exc).__name__
    if "all fuel consumed" in text:
        return TaskStatus.OUT_OF_FUEL, "fuel budget exhausted"
    if "wasm trap: interrupt" in text:
        return TaskStatus.TIMEOUT, "wall-clock deadline passed"
    if "memory" in last and ("limit" in last or "grow" in last or "minimum" in last):
        return TaskStatus.OUT_OF_MEMORY, f"memory limit: {last}"
    if "call stack exhausted" in text:
        return TaskStatus.AGENT_ERROR, "stack overflow in the guest"
    return TaskStatus.AGENT_ERROR, f"the guest crashed: {last}"


class _Instance:
    """One Store + runner instance, armed with `limits`; closed by `close()`."""

    def __init__(self, runtime: _Runtime, limits: SandboxLimits) -> None:
        self.limits = limits
        self.alive = False
        self.store = wasmtime.Store(runtime.engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        self.store.set_limits(memory_size=limits.memory_bytes)
        self._arm()
        with runtime.instantiate_lock:
            instance = runtime.linker.instantiate(self.store, runtime.component)
        load = instance.get_func(self.store, "load")
        call = instance.get_func(self.store, "call")
        if load is None or call is None:
            raise SandboxError("the runner component does not export load/call")
        self._load, self._call = load, call
        self.alive = True

    def _arm(self) -> None:
        self.store.set_fuel(self.limits.fuel)
        self.store.set_epoch_deadline(self.limits.epoch_ticks)

    def invoke(self, name: str, *args: str) -> TaskResult | str:
        """Call `load` or `call`; return the guest's text, or a TaskResult if it trapped."""
        func = self._load if name == "load" else self._call
        self._arm()
        started = time.perf_counter()
        try:
            text = func(self.store, *args)
            func.post_return(self.store)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            self.alive = False
            status, reason = _trap_status(exc)
            return TaskResult(
                status, error=reason, fuel_used=self.fuel_used(), duration_ms=_ms(started)
            )
        if not isinstance(text, str):
            raise SandboxError(f"the runner's {name} returned {type(text).__name__}, not text")
        return text

    def fuel_used(self) -> int:
        try:
            return self.limits.fuel - self.store.get_fuel()
        except wasmtime.WasmtimeError:
            return self.limits.fuel

    def close(self) -> None:
        self.alive = False
        self.store.close()


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _parse_outcome(text: str, fuel_used: int, duration_ms: float, limit: int) -> TaskResult:
    """Turn the runner's JSON outcome into a TaskResult. The agent shares the guest interpreter
    with the runner and could tamper with it, so the outcome is checked like any input."""
    if len(text) > 4 * limit + _TRACEBACK_CAP + 4096:
        return TaskResult(TaskStatus.OUTPUT_TOO_LARGE, error=f"outcome is {len(text)} characters")
    try:
        outcome = json.loads(text)
        status = TaskStatus(outcome["status"])
    except (ValueError, KeyError, TypeError) as exc:
        return TaskResult(TaskStatus.BAD_OUTPUT, error=f"unreadable outcome from the guest: {exc}")
    peak = outcome.get("memory_peak") or None
    return TaskResult(
        status,
        value=outcome.get("value") if status is TaskStatus.OK else None,
        error=str(outcome.get("error", ""))[:2000],
        traceback=str(outcome.get("traceback", ""))[-_TRACEBACK_CAP:],
        stdout=str(outcome.get("stdout", "")),
        fuel_used=fuel_used,
        memory_peak_bytes=peak if isinstance(peak, int) else None,
        duration_ms=duration_ms,
    )


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

    Creating a Sandbox is cheap; the runner is built (first use on this machine) or loaded from
    the cache on the first `run` or `ensure_ready`, once per process.
    """

    def __init__(
        self, limits: SandboxLimits | None = None, *, progress: build.Progress | None = None
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.progress = progress

    def ensure_ready(self) -> None:
        """Build or load the compiled runner now (otherwise it happens on the first run)."""
        _Runtime.get(self.progress)

    def run(
        self,
        source: str | AgentSource,
        tasks: Iterable[Mapping[str, Any]],
        *,
        limits: SandboxLimits | None = None,
        reuse_instance: bool = False,
        trace_memory: bool = False,
    ) -> list[TaskResult]:
        """Run `source`'s entry on each task; one result per task, in order.

        `reuse_instance` runs the tasks in one instance (faster; globals persist between these
        tasks). `trace_memory` reports the peak Python heap per task (slower).
        """
        agent = AgentSource.of(source)
        limits = limits or self.limits
        texts = [_task_text(task) for task in tasks]
        runtime = _Runtime.get(self.progress)
        files = json.dumps(agent.files)
        options = json.dumps({"max_output": limits.max_output_bytes, "trace_memory": trace_memory})
        results: list[TaskResult] = []
        current: _Instance | None = None
        load_failure: TaskResult | None = None
        try:
            for text in texts:
                if current is None or not current.alive or not reuse_instance:
                    # A new instance after a trap, or per task unless asked to reuse one.
                    if current is not None:
                        current.close()
                    current, load_failure = _start(runtime, limits, files, agent.entry, options)
                if load_failure is not None or current is None:
                    results.append(load_failure or _NOT_STARTED)
                    continue
                results.append(_call(current, text, limits))
        finally:
            if current is not None:
                current.close()
            _run_counts.add(results)
        return results

    def run_one(
        self, source: str | AgentSource, task: Mapping[str, Any], **options: Any
    ) -> TaskResult:
        """Run one task in a fresh instance."""
        return self.run(source, [task], **options)[0]


def _task_text(task: Mapping[str, Any]) -> str:
    if not isinstance(task, Mapping):
        raise InvalidAgentSource(repr(task)[:80], "a task must be a JSON object")
    try:
        return json.dumps(task, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidAgentSource(repr(task)[:80], f"task is not JSON: {exc}") from exc


def _start(
    runtime: _Runtime, limits: SandboxLimits, files: str, entry: str, options: str
) -> tuple[_Instance | None, TaskResult | None]:
    """A fresh instance with the agent loaded, or the result explaining why it could not be."""
    started = time.perf_counter()
    try:
        instance = _Instance(runtime, limits)
    except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
        status, reason = _trap_status(exc)
        if status is TaskStatus.OUT_OF_MEMORY:
            reason = f"memory limit {limits.memory_bytes} bytes is below the runner's own: {reason}"
        return None, TaskResult(status, error=reason, duration_ms=_ms(started))
    outcome = instance.invoke("load", files, entry, options)
    if isinstance(outcome, TaskResult):
        return instance, outcome
    if outcome:
        used = instance.fuel_used()
        return instance, _parse_outcome(outcome, used, _ms(started), limits.max_output_bytes)
    return instance, None


def _call(instance: _Instance, text: str, limits: SandboxLimits) -> TaskResult:
    started = time.perf_counter()
    outcome = instance.invoke("call", text)
    if isinstance(outcome, TaskResult):
        return outcome
    return _parse_outcome(outcome, instance.fuel_used(), _ms(started), limits.max_output_bytes)


"""The in-process core of the sandbox: one Wasmtime engine running the runner component.

`Engine.execute(request)` runs a `RunRequest` and yields one `Step` per task, in order: either a
`TaskResult` the host made itself (a trap, a runner that could not start) or the guest's raw
`GuestOutcome` text, which `sandbox.outcome.finish` turns into a `TaskResult`. The same code runs
in the calling process (`Isolation.IN_PROCESS`) and inside each pool worker (`sandbox.worker`).

Invariants:

- One engine, one compiled runner and one epoch ticker per process (`Engine.shared`); the ticker
  is a daemon thread advancing the epoch every `EPOCH_TICK_S`.
- Every task gets a fresh `Store` and instance unless the request asks to reuse one (same source,
  same user): then module globals the agent changes are visible to its later tasks in that
  request, never to another request. A trap kills the instance; the next task gets a new one.
- A task's wall-clock deadline is `timeout_s` from its start and covers loading the agent into a
  fresh instance *and* the call: the epoch deadline is armed with what remains before each step.
  Fuel is re-armed before loading and before every call.
- The epoch interrupts wasm code only. A guest blocked inside a host call (a WASI `poll` reached
  past the runner's guards) is not interrupted; the pool's process backstop handles that case.
- The guest sees no directory, no environment, no arguments, no network and an empty stdin.
- Every Store is closed in a `finally`.
- The runner's one import, `complete` (a model call, `sandbox.host_models`), is answered by the
  `ModelHost` given to `execute` (none: `models_unavailable`), on the thread that runs the
  guest, with the task's remaining time. A failing host is an `err` answer; a call that comes
  back after the task's deadline ends the task `timeout` there and then (the epoch does not
  run during host calls, and the guest must not get to use a late answer).
"""

from __future__ import annotations

import atexit
import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import wasmtime
from wasmtime import component as wasm_component

from core.context import acceptable, correlation_id
from sandbox import build
from sandbox.errors import SandboxError
from sandbox.host_models import UNAVAILABLE, HostAnswer, ModelHost
from sandbox.limits import EPOCH_TICK_S, SandboxLimits
from sandbox.results import TaskResult, TaskStatus

_NOT_STARTED = TaskResult(TaskStatus.AGENT_ERROR, error="the runner could not be started")


@dataclass(frozen=True, slots=True)
class GuestOutcome:
    """The runner's JSON outcome text for one task, unparsed, with what the host measured."""

    text: str
    fuel_used: int
    duration_ms: float


Step = TaskResult | GuestOutcome
"""What the engine yields per task."""


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One `Sandbox.run` call: the agent's files and entry, the tasks as JSON texts, limits."""

    files: dict[str, str]
    entry: str
    tasks: tuple[str, ...]
    limits: SandboxLimits
    reuse_instance: bool = False
    trace_memory: bool = False
    # The work this request belongs to (`core.context`): the worker runs it under that id.
    correlation_id: str | None = field(default_factory=correlation_id)

    def rest(self, done: int) -> RunRequest:
        """The same request without its first `done` tasks."""
        return RunRequest(
            self.files,
            self.entry,
            self.tasks[done:],
            self.limits,
            self.reuse_instance,
            self.trace_memory,
            self.correlation_id,
        )

    def to_wire(self) -> bytes:
        limits = self.limits
        return json.dumps(
            {
                "files": self.files,
                "entry": self.entry,
                "tasks": list(self.tasks),
                "limits": [
                    limits.fuel,
                    limits.memory_bytes,
                    limits.timeout_s,
                    limits.max_output_bytes,
                ],
                "reuse": self.reuse_instance,
                "trace_memory": self.trace_memory,
                "correlation_id": self.correlation_id,
            }
        ).encode()

    @classmethod
    def from_wire(cls, data: bytes) -> RunRequest:
        raw: dict[str, Any] = json.loads(data)
        fuel, memory, timeout, output = raw["limits"]
        limits = SandboxLimits(fuel, memory, timeout, output)
        return cls(
            raw["files"],
            raw["entry"],
            tuple(raw["tasks"]),
            limits,
            bool(raw["reuse"]),
            bool(raw["trace_memory"]),
            acceptable(raw.get("correlation_id")),
        )


class Engine:
    """The process-wide engine, compiled runner, linker and epoch ticker."""

    _instance: Engine | None = None
    _guard = threading.Lock()

    def __init__(self, component_path: str | None = None, progress: build.Progress | None = None):
        self.engine = build.make_engine()
        if component_path is None:
            self.component = build.load_or_build(self.engine, progress)
        else:
            self.component = wasm_component.Component.deserialize_file(self.engine, component_path)
        self.linker = wasm_component.Linker(self.engine)
        with self.linker.root() as root:
            root.add_func("complete", _complete)
        # wasmtime-py 50 cannot replace a single WASI function (see docs/sandbox.md), so the
        # linker gets the stock WASIp2 implementation and blocking calls are bounded outside.
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
    def shared(cls, progress: build.Progress | None = None) -> Engine:
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls(progress=progress)
            return cls._instance

    def execute(self, request: RunRequest, host: ModelHost | None = None) -> Iterator[Step]:
        """Run every task of `request`; one step per task, in order. `host` answers the
        guest's model calls."""
        _current.host = host or UNAVAILABLE
        limits = request.limits
        files = json.dumps(request.files)
        options = json.dumps(
            {"max_output": limits.max_output_bytes, "trace_memory": request.trace_memory}
        )
        current: _Instance | None = None
        load_failure: Step | None = None
        try:
            for text in request.tasks:
                deadline = time.monotonic() + limits.timeout_s
                if current is None or not current.alive or not request.reuse_instance:
                    if current is not None:
                        current.close()
                    current, load_failure = self._start(
                        limits, files, request.entry, options, deadline
                    )
                if load_failure is not None or current is None:
                    yield load_failure or _NOT_STARTED
                    continue
                yield current.invoke("call", deadline, text)
        finally:
            if current is not None:
                current.close()

    def _start(
        self, limits: SandboxLimits, files: str, entry: str, options: str, deadline: float
    ) -> tuple[_Instance | None, Step | None]:
        """A fresh instance with the agent loaded, or the step explaining why it could not be."""
        started = time.perf_counter()
        try:
            instance = _Instance(self, limits, deadline)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            status, reason = trap_status(exc)
            if status is TaskStatus.OUT_OF_MEMORY:
                reason = (
                    f"memory limit {limits.memory_bytes} bytes is below the runner's own: {reason}"
                )
            return None, TaskResult(status, error=reason, duration_ms=_ms(started))
        outcome = instance.invoke("load", deadline, files, entry, options)
        if isinstance(outcome, TaskResult) or outcome.text:
            return instance, outcome
        return instance, None


def trap_status(exc: Exception) -> tuple[TaskStatus, str]:
    """Map a wasmtime trap to a status and a one-line reason."""
    text = str(exc).strip()
    last = text.splitlines()[-1].strip() if text else type(exc).__name__
    if "all fuel consumed" in text:
        return TaskStatus.OUT_OF_FUEL, "fuel budget exhausted"
    if "wasm trap: interrupt" in text:
        return TaskStatus.TIMEOUT, "wall-clock deadline passed"
    if "memory" in last and ("limit" in last or "grow" in last or "minimum" in last):
        return TaskStatus.OUT_OF_MEMORY, f"memory limit: {last[:300]}"
    if "call stack exhausted" in text:
        return TaskStatus.AGENT_ERROR, "stack overflow in the guest"
    return TaskStatus.AGENT_ERROR, f"the guest crashed: {last[:300]}"


class _Current(threading.local):
    """What the `complete` import of a guest running on this thread answers with."""

    host: ModelHost = UNAVAILABLE
    deadline: float = 0.0


_current = _Current()


class _DeadlinePassed(Exception):
    """Raised by the `complete` import when the task's deadline passed during the call: it
    traps the guest, and `invoke` reports the task as a timeout."""


def _complete(_store: object, model: str, messages: str, options: str) -> wasm_component.Variant:
    """The runner's `complete` import: the thread's `ModelHost`, bounded by the task's
    deadline. Raises only `_DeadlinePassed` (a raise traps the guest)."""
    try:
        answer = _current.host.complete(model, messages, options,
                                        _current.deadline - time.monotonic())
    except Exception as exc:  # the host's own failure: the guest sees an error, not a trap
        answer = HostAnswer.refuse("host_error", f"{type(exc).__name__}: {exc}"[:500])
    if time.monotonic() >= _current.deadline:
        raise _DeadlinePassed
    return wasm_component.Variant("ok" if answer.ok else "err", answer.text)


class _Instance:
    """One Store + runner instance, armed with `limits`; closed by `close()`."""

    def __init__(self, engine: Engine, limits: SandboxLimits, deadline: float) -> None:
        self.limits = limits
        self.alive = False
        self.store = wasmtime.Store(engine.engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        self.store.set_limits(memory_size=limits.memory_bytes)
        self._arm(deadline)
        try:
            with engine.instantiate_lock:
                instance = engine.linker.instantiate(self.store, engine.component)
            load = instance.get_func(self.store, "load")
            call = instance.get_func(self.store, "call")
        except BaseException:
            self.store.close()
            raise
        if load is None or call is None:
            self.store.close()
            raise SandboxError("the runner component does not export load/call")
        self._load, self._call = load, call
        self.alive = True

    def _arm(self, deadline: float) -> None:
        _current.deadline = deadline
        self.store.set_fuel(self.limits.fuel)
        remaining = deadline - time.monotonic()
        self.store.set_epoch_deadline(max(1, math.ceil(remaining / EPOCH_TICK_S)))

    def invoke(self, name: str, deadline: float, *args: str) -> Step:
        """Call `load` or `call`; the guest's text, or a TaskResult if it trapped."""
        func = self._load if name == "load" else self._call
        self._arm(deadline)
        started = time.perf_counter()
        try:
            text = func(self.store, *args)
            func.post_return(self.store)
        except _DeadlinePassed:
            self.alive = False
            return TaskResult(TaskStatus.TIMEOUT, error="wall-clock deadline passed during a "
                              "model call", fuel_used=self.fuel_used(), duration_ms=_ms(started))
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            self.alive = False
            status, reason = trap_status(exc)
            return TaskResult(
                status, error=reason, fuel_used=self.fuel_used(), duration_ms=_ms(started)
            )
        if not isinstance(text, str):
            self.alive = False
            kind = type(text).__name__
            return TaskResult(TaskStatus.BAD_OUTPUT, error=f"the runner's {name} returned {kind}")
        return GuestOutcome(text, self.fuel_used(), _ms(started))

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

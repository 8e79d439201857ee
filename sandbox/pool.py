"""A bounded pool of warm sandbox worker processes: the backstop that ends every task on time.

Fuel and the epoch stop guest *code*; a guest blocked inside a host call (a WASI `poll` reached
past the runner's guards) is beyond them. So untrusted code runs in worker processes
(`sandbox.worker`) that the pool kills when a task overruns its deadline by `grace_s`.

Invariants:

- At most `size` workers exist. A caller takes an idle worker, starts one if there is room, or
  waits for one to be handed back. A worker serves one request at a time and many requests in
  its life (a fresh wasm instance per task inside it, as in-process).
- Each task has a backstop: the parent waits `timeout_s + grace_s` for that task's message,
  counted from the moment it starts waiting for it (never before the worker could have started
  the task). A worker that misses it is SIGKILLed and reaped, the task is `timeout`, a
  replacement worker is started at once, and the request's remaining tasks go to another worker.
- A guest's model call arrives as a message of its own while its task runs
  (`sandbox.host_models`): the pool answers it with the caller's `ModelHost`, bounded by the
  task's remaining time, and goes on waiting for the task within the same backstop (or, for a
  call answered at the deadline, `grace_s` from the answer).
- Workers are started with a minimal environment (`WORKER_ENV`): no provider key or database
  URL of this process is ever in a worker's memory.
- Whatever a worker does (exit, crash, garbage, an oversized or unframed message) the task ends
  as a typed `TaskResult` and the worker is retired. `run` raises only `SandboxWorkerError` (a
  worker could not be started at all: a host problem) or `SandboxError` (the pool is closed).
- Workers die with the pool (`close()`, also registered at exit for the shared pool) and with
  the parent process, however it ends (the lifeline in `sandbox.worker`). Every retired worker is
  joined, so none is left a zombie.
- Workers are fresh interpreters (fork + exec through `subprocess`, which is what
  multiprocessing's `spawn` does too, minus its re-import of the caller's `__main__`, which fails
  in scripts without a main guard): never a bare fork of this multi-threaded process. Framing
  is `multiprocessing.connection` (length-prefixed messages, `poll` with a timeout).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from sandbox import build
from sandbox.engine import RunRequest
from sandbox.errors import SandboxError, SandboxWorkerError
from sandbox.host_models import (
    MAX_REQUEST_BYTES,
    UNAVAILABLE,
    HostAnswer,
    HostCall,
    ModelHost,
    answer_to_wire,
)
from sandbox.outcome import finish
from sandbox.results import TaskResult, TaskStatus
from sandbox.worker import BOOT, HEADER_CAP, READY, WireError, decode_step, message_cap

log = logging.getLogger("agentfactory.sandbox")

GRACE_S = 0.25
"""How long past a task's deadline its worker may stay silent before it is killed."""
START_TIMEOUT_S = 120.0
"""How long a new worker may take to load the compiled runner (generous: busy machines)."""


WORKER_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "SYSTEMROOT")
"""The only variables a sandbox worker inherits: it needs none of this process's settings
(the runner's path is an argument), and must hold no key (`sandbox.host_models`)."""


def worker_env() -> dict[str, str]:
    return {name: os.environ[name] for name in WORKER_ENV if name in os.environ}


def default_size() -> int:
    """Workers in a pool by default: one per core, at least 2 and at most 8."""
    return min(8, max(2, os.cpu_count() or 2))


class _Worker:
    """One worker process, its request pipe and the lifeline that ends it with this process.

    `boot` is the worker's program (`python -I -c BOOT sys_path conn_fd lifeline_fd *args`);
    `runs.engine` starts its run workers through this same class with its own. `env` is the
    worker's environment (None: this process's)."""

    def __init__(
        self, *args: str, boot: str = BOOT, env: Mapping[str, str] | None = None
    ) -> None:
        self.conn, child_conn = multiprocessing.Pipe(duplex=True)
        lifeline, self._lifeline = multiprocessing.Pipe(duplex=False)
        fds = (child_conn.fileno(), lifeline.fileno())
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-c",
                    boot,
                    json.dumps(sys.path),
                    *map(str, fds),
                    *args,
                ],
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        except BaseException:
            self.conn.close()
            self._lifeline.close()
            raise
        finally:
            child_conn.close()
            lifeline.close()
        self.pid = self.process.pid
        self.ready = False
        self._lock = threading.Lock()
        self._retired = False

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        if not self.conn.poll(timeout):
            raise SandboxWorkerError(self.pid, f"not ready after {timeout:.0f} s")
        try:
            message = self.conn.recv_bytes(HEADER_CAP)
        except (EOFError, OSError):
            raise SandboxWorkerError(self.pid, f"it {self.exit_reason()} while starting") from None
        if message != READY:
            raise SandboxWorkerError(self.pid, message.decode("utf-8", "replace"))
        self.ready = True

    def exit_reason(self) -> str:
        try:
            code = self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "stopped answering"
        return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"

    def kill(self) -> None:
        with self._lock:
            if not self._retired:
                self.process.kill()

    def retire(self, *, kill: bool) -> None:
        """End the process (politely unless `kill`) and reap it; idempotent."""
        with self._lock:
            if self._retired:
                return
            self._retired = True
            if kill:
                self.process.kill()
            self.conn.close()
            self._lifeline.close()  # the worker sees EOF on both pipes and exits
            try:
                self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class WorkerPool:
    """Warm worker processes shared by every `Sandbox` that uses this pool. Thread-safe."""

    def __init__(
        self,
        size: int | None = None,
        *,
        grace_s: float = GRACE_S,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.size = size or default_size()
        if self.size < 1:
            raise SandboxError(f"a sandbox worker pool needs at least one worker: {size!r}")
        self.grace_s = grace_s
        self.start_timeout_s = start_timeout_s
        self.replaced = 0
        """Workers retired after a kill, a crash or garbage, and replaced."""
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._count = 0
        self._closed = False
        self._component: str | None = None
        self._component_lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._closed

    def prepare(self, progress: build.Progress | None = None) -> str:
        """Build or load the compiled runner in this process (so build progress shows here);
        workers only deserialize the artifact. Returns its path."""
        with self._component_lock:
            if self._component is None:
                build.load_or_build(build.make_engine(), progress)
                self._component = str(build.artifact_path())
            return self._component

    def warm(self, progress: build.Progress | None = None) -> None:
        """Have at least one worker started and ready."""
        self.prepare(progress)
        self._release(self._acquire(), healthy=True)

    def pids(self) -> list[int]:
        """Process ids of the workers alive now (idle or busy)."""
        with self._cond:
            return sorted(w.pid for w in (*self._idle, *self._busy))

    def run(self, request: RunRequest, host: ModelHost | None = None) -> list[TaskResult]:
        """One result per task of `request`, in order, each within its deadline plus grace;
        `host` answers the guest's model calls (none: refused)."""
        self.prepare()
        results: list[TaskResult] = []
        while len(results) < len(request.tasks):
            worker = self._acquire()
            healthy = False
            try:
                healthy = self._serve(worker, request.rest(len(results)), results, host)
            finally:
                self._release(worker, healthy=healthy, replace=True)
        return results

    def _serve(
        self, worker: _Worker, request: RunRequest, results: list[TaskResult],
        host: ModelHost | None = None,
    ) -> bool:
        """Send `request` to `worker` and collect its results into `results`; False when the
        worker failed and must be retired (the failing task's result is appended)."""
        limits = request.limits
        cap = message_cap(limits.max_output_bytes)
        try:
            worker.conn.send_bytes(request.to_wire())
        except OSError:
            results.append(_died(worker, 0.0))
            return False
        for _ in request.tasks:
            started = time.perf_counter()
            backstop = time.monotonic() + limits.timeout_s + self.grace_s
            while True:  # the task's step, after answering any model calls its guest makes
                left = backstop - time.monotonic()
                if not worker.conn.poll(max(0.0, left)):
                    worker.kill()
                    # The caller's correlation id (`core.context`) goes with the line; the
                    # request carried it to the worker too.
                    log.warning("sandbox worker %d killed: a task passed its deadline of %g s",
                                worker.pid, limits.timeout_s)
                    results.append(
                        TaskResult(
                            TaskStatus.TIMEOUT,
                            error=f"deadline of {limits.timeout_s:g} s passed while the guest "
                            "was blocked in a host call; its worker process was killed",
                            duration_ms=_ms(started),
                        )
                    )
                    return False
                try:
                    data = worker.conn.recv_bytes(max(cap, MAX_REQUEST_BYTES + HEADER_CAP))
                    call = HostCall.from_wire(data)
                    if call is not None:
                        _answer(worker, call, host, backstop)
                        # A call cut at the deadline is answered then: the worker gets its
                        # grace from the answer to report the task's end.
                        backstop = max(backstop, time.monotonic() + self.grace_s)
                        continue
                    if len(data) > cap:
                        raise OSError("bad message length")  # a step over the caller's cap
                    step = decode_step(data)
                except (EOFError, ConnectionError):
                    results.append(_died(worker, _ms(started)))
                    return False
                except OSError:  # "bad message length": over the cap, the pipe is now closed
                    results.append(
                        TaskResult(
                            TaskStatus.OUTPUT_TOO_LARGE,
                            duration_ms=_ms(started),
                            error=f"the worker's answer is over {cap} bytes",
                        )
                    )
                    return False
                except WireError as exc:
                    results.append(
                        TaskResult(exc.status, error=exc.reason, duration_ms=_ms(started))
                    )
                    return False
                break
            results.append(finish(step, limits.max_output_bytes))
        return True

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise SandboxError("the sandbox worker pool is closed")
                if self._idle:
                    worker: _Worker | None = self._idle.pop()  # the most recently used: warmest
                    break
                if self._count < self.size:
                    self._count += 1
                    worker = None
                    break
                self._cond.wait()
            if worker is not None:
                self._busy.add(worker)
        if worker is None:
            worker = self._start()
            with self._cond:
                self._busy.add(worker)
        try:
            worker.wait_ready(self.start_timeout_s)
        except SandboxWorkerError:
            self._release(worker, healthy=False)
            raise
        return worker

    def _start(self) -> _Worker:
        """A new worker in a slot already counted; the slot is freed if it cannot start."""
        try:
            return _Worker(self.prepare(), env=worker_env())
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker, *, healthy: bool, replace: bool = False) -> None:
        with self._cond:
            self._busy.discard(worker)
            if healthy and not self._closed:
                self._idle.append(worker)
                self._cond.notify()
                return
        worker.retire(kill=True)
        with self._cond:
            self._count -= 1
            replace = replace and not self._closed
            if replace:
                self.replaced += 1
                self._count += 1
            else:
                self._cond.notify()
        if replace:
            # Started now, ready by the time it is next needed: the next task does not wait for
            # a cold interpreter.
            try:
                fresh = self._start()
            except (OSError, SandboxError):
                return
            with self._cond:
                self._idle.append(fresh)
                self._cond.notify()

    def close(self) -> None:
        """Stop every worker and reap it. Requests in flight end as typed failures."""
        with self._cond:
            self._closed = True
            idle, busy = list(self._idle), list(self._busy)
            self._idle.clear()
            self._cond.notify_all()
        for worker in busy:
            worker.kill()  # its caller sees the death, records it and retires the worker
        for worker in idle:
            worker.retire(kill=False)
        with self._cond:
            self._count -= len(idle)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _answer(worker: _Worker, call: HostCall, host: ModelHost | None, deadline: float) -> None:
    """Answer a guest's model call for `worker` with `host`, within the task's remaining time
    as the worker measured it (its epoch deadline), and never past this process's backstop
    `deadline`."""
    remaining = min(call.remaining_s, deadline - time.monotonic())
    try:
        answer = (host or UNAVAILABLE).complete(call.model, call.messages, call.options,
                                               remaining)
    except Exception as exc:  # the host's own failure: the guest sees an error
        log.exception("sandbox model host failed")
        answer = HostAnswer.refuse("host_error", f"{type(exc).__name__}: {exc}"[:500])
    with contextlib.suppress(OSError):  # a dead worker shows on the next poll
        worker.conn.send_bytes(answer_to_wire(answer))


def _died(worker: _Worker, duration_ms: float) -> TaskResult:
    reason = worker.exit_reason()
    log.warning("sandbox worker %d %s during a task", worker.pid, reason)
    return TaskResult(
        TaskStatus.AGENT_ERROR,
        duration_ms=duration_ms,
        error=f"the sandbox worker process {reason} during the task",
    )


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


WorkerProcess = _Worker
"""The public name of one killable worker process (used by `runs.engine`)."""

_shared: WorkerPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> WorkerPool:
    """The process-wide pool used by every `Sandbox` not given its own; closed at exit."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.closed:
            _shared = WorkerPool()
            atexit.register(_shared.close)
        return _shared

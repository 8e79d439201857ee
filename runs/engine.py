"""Run engines: what executes queued runs. `RunEngine` is the interface the API needs;
`LocalEngine` is the embedded default (worker processes on this machine, state in the store).

A distributed engine plugs in behind the same four calls: `submit` hands it a run id that is
already `queued` in the store, `cancel` asks it to stop a running one (the store has already
recorded the request), `start` and `close` bracket its life. Whatever the engine, the store's
claim/lease/finish protocol is what keeps results exactly-once-written under at-least-once
delivery.

`LocalEngine` invariants:
- `workers` slot threads, each owning one worker process (`runs.worker`, started through
  `sandbox.pool.WorkerProcess`); a slot runs one run at a time: claim it in the store, send it
  to its worker, wait for the outcome, finish it in the store. Untrusted code never runs in
  this (the API) process.
- Each run has a wall-clock deadline, `timeout_s + grace_s` from the moment it was sent: a
  worker that misses it is SIGKILLed and reaped, the run ends `timed_out` (code `deadline`),
  and the slot starts a fresh worker. `cancel` of a running run kills its worker the same way
  and the run ends `cancelled`.
- While a run executes, its slot renews the lease every `lease_s / 3`; a heartbeat that finds
  the lease gone (another process expired it) kills the worker and writes nothing; one that
  finds a cancel request (made through another API process) kills it too.
- A worker that dies mid-run (crash, OOM killer, `kill -9`) gives the run back to the store
  (`release`): queued again for another attempt, or failed `worker_lost` after `max_attempts`.
- A sweeper thread expires stale leases and picks up queued runs this process was not told
  about (submitted through another API process, or left by a previous server) every `sweep_s`.
  At start, with `orphans=True` (this process is the database's only user, the embedded
  default), every run still `running` is given back at once: its server died.
- `on_change(run_id)` is called (from engine threads) after each state change the engine makes.
- `close()` stops the threads and kills and reaps every worker: none is left behind.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import Protocol

from runs.errors import RunWorkerError
from runs.schemas import Claim, Outcome
from runs.settings import RunSettings
from runs.store import RunStore
from runs.worker import BOOT, WorkerConfig
from sandbox.pool import WorkerProcess

log = logging.getLogger("agentfactory.runs")

MESSAGE_CAP = 64 * 1024 * 1024
"""The largest outcome a worker may send (a bigger one fails the run as `bad_output`)."""
START_TIMEOUT_S = 120.0


class RunEngine(Protocol):
    """Executes runs the store holds as `queued`."""

    def start(self) -> None: ...

    def submit(self, run_id: str) -> None: ...

    def cancel(self, run_id: str) -> None: ...

    def close(self) -> None: ...


Listener = Callable[[str], None]


class _Lost:
    """The worker died mid-run; `reason` says how."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Slot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.worker: WorkerProcess | None = None
        self.run_id: str | None = None
        self.cancelling = False


class LocalEngine:
    """The embedded engine: `settings.workers` worker processes fed from the store."""

    def __init__(
        self,
        store: RunStore,
        config: WorkerConfig | None = None,
        *,
        on_change: Listener | None = None,
        orphans: bool = False,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.settings: RunSettings = store.settings
        self.config = config or WorkerConfig()
        self.on_change = on_change or (lambda run_id: None)
        self.orphans = orphans
        self.start_timeout_s = start_timeout_s
        self.owner = f"local-{os.getpid()}-{secrets.token_hex(4)}"
        self.replaced = 0
        """Workers killed (deadline, cancel) or lost, and replaced."""
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._slots = [_Slot(i) for i in range(self.settings.workers)]
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._started = False

    # ---------------------------------------------------------------------------- interface

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.orphans:
            for run_id in self.store.expire_leases(everything=True):
                self.on_change(run_id)
        for slot in self._slots:
            self._spawn(f"run-slot-{slot.index}", self._serve, slot)
        self._spawn("run-sweeper", self._sweep)
        self._pick_up_queued()

    def submit(self, run_id: str) -> None:
        with self._lock:
            if run_id in self._pending or self._stop.is_set():
                return
            self._pending.add(run_id)
        self._queue.put(run_id)

    def cancel(self, run_id: str) -> None:
        with self._lock:
            slot = next((s for s in self._slots if s.run_id == run_id), None)
            if slot is None or slot.worker is None:
                return  # not running here: queued runs are cancelled by the store alone
            slot.cancelling = True
            slot.worker.kill()

    def close(self) -> None:
        self._stop.set()
        for _ in self._slots:
            self._queue.put(None)
        with self._lock:
            workers = [s.worker for s in self._slots if s.worker is not None]
        for worker in workers:
            worker.kill()  # a run in flight ends as lost: it is given back to the store
        for thread in self._threads:
            thread.join(timeout=30)
        for slot in self._slots:
            self._retire(slot)

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return sorted(s.worker.pid for s in self._slots if s.worker is not None)

    def running(self) -> dict[str, int]:
        """Run id -> pid of the worker executing it, for the runs executing now."""
        with self._lock:
            return {
                s.run_id: s.worker.pid for s in self._slots
                if s.run_id is not None and s.worker is not None
            }

    def __enter__(self) -> LocalEngine:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ threads

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _serve(self, slot: _Slot) -> None:
        try:
            self._worker(slot)  # warm before the first run arrives
        except RunWorkerError as exc:
            if not self._stop.is_set():
                log.error("%s", exc)
        while not self._stop.is_set():
            run_id = self._queue.get()
            if run_id is None:
                return
            requeued = False
            try:
                requeued = self._run(slot, run_id)
            except Exception:
                log.exception("run %s: the engine failed", run_id)
            finally:
                with self._lock:
                    self._pending.discard(run_id)
            if requeued:
                self.submit(run_id)

    def _sweep(self) -> None:
        while not self._stop.wait(self.settings.sweep_s):
            try:
                for run_id in self.store.expire_leases():
                    self.on_change(run_id)
                self._pick_up_queued()
            except Exception:
                log.exception("run sweeper failed")

    def _pick_up_queued(self) -> None:
        for run_id in self.store.queued():
            self.submit(run_id)

    # ------------------------------------------------------------------------------ one run

    def _run(self, slot: _Slot, run_id: str) -> bool:
        """Execute `run_id` in `slot`; True when it went back to the queue."""
        claim = self.store.claim(run_id, self.owner)
        if claim is None:
            return False  # someone else has it, or it was cancelled meanwhile
        self.on_change(run_id)
        try:
            worker = self._worker(slot)
        except RunWorkerError as exc:
            status = self.store.release(claim, str(exc))
            self.on_change(run_id)
            return status == "queued"
        with self._lock:
            slot.run_id, slot.cancelling = run_id, False
        try:
            result = self._wait(slot, worker, claim)
        finally:
            with self._lock:
                slot.run_id = None
                cancelled = slot.cancelling
        if cancelled or isinstance(result, _Lost) or result is None:
            self._retire(slot, replaced=True)
        if result is None:
            return False  # the lease is no longer ours: write nothing
        if isinstance(result, _Lost):
            if cancelled:
                result = Outcome.failure("cancelled", "cancelled", "cancelled while running")
            else:
                status = self.store.release(claim, result.reason)
                self.on_change(run_id)
                return status == "queued"
        self.store.finish(claim, result)
        self.on_change(run_id)
        return False

    def _wait(self, slot: _Slot, worker: WorkerProcess, claim: Claim) -> Outcome | _Lost | None:
        """The run's outcome; `_Lost` if its worker died; None if its lease was lost."""
        try:
            worker.conn.send_bytes(claim.to_wire())
        except OSError:
            return _Lost(f"the worker {worker.exit_reason()}")
        budget = claim.timeout_s + self.settings.grace_s
        deadline = time.monotonic() + budget
        beat = self.settings.lease_s / 3
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                worker.kill()
                self._retire(slot, replaced=True)
                return Outcome.failure(
                    "timed_out", "deadline",
                    f"the run passed its deadline of {claim.timeout_s:g} s; its worker process "
                    "was killed",
                    timeout_s=claim.timeout_s,
                )
            if worker.conn.poll(min(remaining, beat)):
                try:
                    data = worker.conn.recv_bytes(MESSAGE_CAP)
                except (EOFError, ConnectionError):
                    return _Lost(f"the worker process {worker.exit_reason()} during the run")
                except OSError:
                    self._retire(slot, replaced=True)
                    return Outcome.failure(
                        "failed", "bad_output", f"the run's result is over {MESSAGE_CAP} bytes"
                    )
                try:
                    return Outcome.from_wire(data)
                except ValueError as exc:
                    self._retire(slot, replaced=True)
                    return Outcome.failure("failed", "internal", f"the worker sent {exc}")
            else:
                beat_state = self.store.heartbeat(claim)
                if beat_state == "lost":
                    worker.kill()
                    return None
                if beat_state == "cancel":
                    with self._lock:
                        slot.cancelling = True
                    worker.kill()

    # ------------------------------------------------------------------------------ workers

    def _worker(self, slot: _Slot) -> WorkerProcess:
        """The slot's worker, started (and waited for) if it has none."""
        with self._lock:
            worker = slot.worker
        if worker is not None:
            return worker
        if self._stop.is_set():
            raise RunWorkerError(None, "the engine is closed")
        try:
            worker = WorkerProcess(self.config.to_json(), boot=BOOT)
        except OSError as exc:
            raise RunWorkerError(None, str(exc)) from None
        try:
            worker.wait_ready(self.start_timeout_s)
        except Exception as exc:
            worker.retire(kill=True)
            raise RunWorkerError(worker.pid, str(getattr(exc, "reason", exc))) from None
        with self._lock:
            if self._stop.is_set():
                worker.retire(kill=True)
                raise RunWorkerError(worker.pid, "the engine is closed")
            slot.worker = worker
        return worker

    def _retire(self, slot: _Slot, *, replaced: bool = False) -> None:
        with self._lock:
            worker, slot.worker = slot.worker, None
        if worker is None:
            return
        worker.retire(kill=True)
        if replaced:
            self.replaced += 1

"""Worker slots: how every run engine executes one run, in a killable worker process.

Whatever delivers a run id (the embedded engine's own queue, or a procrastinate job on another
machine), executing it is the same: claim it in the store, send it to a worker process, wait for
the outcome within its deadline while renewing the lease, finish it in the store. `SlotPool`
holds that machinery once, for both engines.

Invariants:
- `size` slots, each owning at most one worker process (`runs.worker`, started through
  `sandbox.pool.WorkerProcess`); a slot runs one run at a time. A slot is driven by one thread at
  a time: the engine thread that owns it (`run(slot, run_id)`) or a borrower (`execute(run_id)`
  takes a free slot, waiting for one). Untrusted code never runs in this process.
- Each run has a wall-clock deadline, `timeout_s + grace_s` from the moment it was sent: a
  worker that misses it is SIGKILLed and reaped, the run ends `timed_out` (code `deadline`),
  and the slot starts a fresh worker. `cancel` of a running run kills its worker the same way
  and the run ends `cancelled`.
- While a run executes, its slot renews the lease every `lease_s / 3`; a heartbeat that finds
  the lease gone (another process expired it) kills the worker and writes nothing; one that
  finds a cancel request (made through another API process) kills it too. A heartbeat that
  cannot reach the database is tried again at the next beat: the lease outlives short outages.
- A worker that dies mid-run (crash, OOM killer, `kill -9`, `kill(run_id)`) gives the run back
  to the store (`release`): queued again for another attempt, or failed `worker_lost` after
  `max_attempts`. If the store itself fails mid-run, the slot's worker is killed (it may still be
  busy) and the error goes up; the run keeps its lease until it expires and is retried.
- `on_change(run_id)` is called (from the calling thread) after each state change made here,
  with two exceptions when the hooks are set: a run starting calls `on_start(run_id)`, and a
  worker's outcome ending it calls `on_final(run)` with the run as it was written (so a waiter
  in this process need not read it back).
- `close()` kills and reaps every worker: none is left behind.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from runs.errors import RunWorkerError
from runs.schemas import Claim, Outcome, RunPublic
from runs.store import Heartbeat, RunStore
from runs.worker import BOOT, WorkerConfig
from sandbox.pool import WorkerProcess

log = logging.getLogger("agentfactory.runs")

MESSAGE_CAP = 64 * 1024 * 1024
"""The largest outcome a worker may send (a bigger one fails the run as `bad_output`)."""
START_TIMEOUT_S = 120.0

Listener = Callable[[str], None]
FinalListener = Callable[[RunPublic], None]


def reason(exc: BaseException) -> str:
    """One line saying why a database call failed (the driver's words, without SQLAlchemy's
    wrapping)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Lost:
    """The worker died mid-run; `reason` says how."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Chain(Protocol):
    """What feeds a slot its next run without a round trip: `next()` is a run id waiting to be
    executed (taken off the caller's queue) or None; `done(run_id, requeued)` is called for
    every run `next()` gave once the slot is through with it (`requeued`: it went back to the
    queue, to be delivered again)."""

    def next(self) -> str | None: ...

    def done(self, run_id: str, requeued: bool) -> None: ...


class Slot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.worker: WorkerProcess | None = None
        self.run_id: str | None = None
        self.cancelling = False


class SlotPool:
    """`size` slots executing runs of `store` as `owner` (see the module docstring)."""

    def __init__(
        self,
        store: RunStore,
        config: WorkerConfig,
        size: int,
        *,
        owner: str,
        on_change: Listener | None = None,
        on_start: Listener | None = None,
        on_final: FinalListener | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.settings = store.settings
        self.config = config
        self.owner = owner
        self.on_change = on_change or (lambda run_id: None)
        self.on_start = on_start or self.on_change
        self.on_final = on_final
        self.start_timeout_s = start_timeout_s
        self.slots = [Slot(i) for i in range(size)]
        self.replaced = 0
        """Workers killed (deadline, cancel) or lost, and replaced."""
        self._free: queue.SimpleQueue[Slot] = queue.SimpleQueue()
        for slot in self.slots:
            self._free.put(slot)
        self._lock = threading.Lock()
        self._closed = threading.Event()

    # ------------------------------------------------------------------------------ running

    def execute(self, run_id: str) -> bool:
        """Run `run_id` on a free slot (waiting for one); True when it went back to the queue."""
        slot = self._free.get()
        try:
            return self.run(slot, run_id)
        finally:
            self._free.put(slot)

    def run(self, slot: Slot, run_id: str, chain: Chain | None = None) -> bool:
        """Execute `run_id` in `slot`; True when it went back to the queue. With `chain`, the
        slot goes on with the runs `chain.next()` hands it, each claimed in the transaction that
        ends the one before (see `Chain`)."""
        claim = self.store.claim(run_id, self.owner)
        if claim is None:
            return False  # someone else has it, or it was cancelled or finished meanwhile
        self.on_start(run_id)
        requeued, claim = self._run_claimed(slot, claim, chain)
        while claim is not None:
            assert chain is not None
            current = claim.run_id
            self.on_start(current)
            try:
                done, claim = self._run_claimed(slot, claim, chain)
            except BaseException:
                chain.done(current, False)
                raise
            chain.done(current, done)
        return requeued

    def _run_claimed(
        self, slot: Slot, claim: Claim, chain: Chain | None
    ) -> tuple[bool, Claim | None]:
        """Execute `claim` in `slot`: whether it went back to the queue, and the next run
        claimed with its end (when `chain` had one waiting)."""
        run_id = claim.run_id
        try:
            worker = self.worker(slot)
        except RunWorkerError as exc:
            status = self.store.release(claim, str(exc))
            self.on_change(run_id)
            return status == "queued", None
        with self._lock:
            slot.run_id, slot.cancelling = run_id, False
        try:
            result = self._wait(slot, worker, claim)
        except BaseException:
            self._retire(slot, replaced=True)  # it may still be busy with this run
            raise
        finally:
            with self._lock:
                slot.run_id = None
                cancelled = slot.cancelling
        if cancelled or isinstance(result, _Lost) or result is None:
            self._retire(slot, replaced=True)
        if result is None:
            return False, None  # the lease is no longer ours: write nothing
        if isinstance(result, _Lost):
            if cancelled:
                result = Outcome.failure("cancelled", "cancelled", "cancelled while running")
            else:
                status = self.store.release(claim, result.reason)
                self.on_change(run_id)
                return status == "queued", None
        following = None if chain is None or self._closed.is_set() else chain.next()
        if following is None:
            settled, claimed = self.store.settle(claim, result), None
        else:
            assert chain is not None
            try:
                settled, claimed = self.store.settle_and_claim(claim, result, following)
            except BaseException:
                chain.done(following, True)  # nothing was written: it is still queued
                raise
            if claimed is None:  # cancelled or taken meanwhile: nothing to run
                chain.done(following, False)
        if settled is not None and self.on_final is not None:
            self.on_final(settled)
        else:
            self.on_change(run_id)
        return False, claimed

    def _wait(self, slot: Slot, worker: WorkerProcess, claim: Claim) -> Outcome | _Lost | None:
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
                beat_state = self._heartbeat(claim)
                if beat_state == "lost":
                    worker.kill()
                    return None
                if beat_state == "cancel":
                    with self._lock:
                        slot.cancelling = True
                    worker.kill()

    def _heartbeat(self, claim: Claim) -> Heartbeat:
        try:
            return self.store.heartbeat(claim)
        except SQLAlchemyError as exc:
            log.warning("run %s: lease not renewed, trying again: %s", claim.run_id, reason(exc))
            return "ok"

    # ---------------------------------------------------------------------------- stopping

    def cancel(self, run_id: str) -> bool:
        """Kill the worker running `run_id` here, which then ends `cancelled`; False if no slot
        of this pool runs it."""
        return self._kill(run_id, cancelling=True)

    def kill(self, run_id: str) -> bool:
        """Kill the worker running `run_id` here, which then goes back to the store's queue."""
        return self._kill(run_id, cancelling=False)

    def _kill(self, run_id: str, *, cancelling: bool) -> bool:
        with self._lock:
            slot = next((s for s in self.slots if s.run_id == run_id), None)
            if slot is None or slot.worker is None:
                return False
            slot.cancelling = slot.cancelling or cancelling
            slot.worker.kill()
            return True

    def stop(self) -> None:
        """Start no more workers and kill the live ones: runs in flight go back to the store."""
        self._closed.set()
        with self._lock:
            workers = [s.worker for s in self.slots if s.worker is not None]
        for worker in workers:
            worker.kill()

    def close(self) -> None:
        """`stop`, then reap every worker."""
        self.stop()
        for slot in self.slots:
            self._retire(slot)

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return sorted(s.worker.pid for s in self.slots if s.worker is not None)

    def running(self) -> dict[str, int]:
        """Run id -> pid of the worker executing it, for the runs executing now."""
        with self._lock:
            return {
                s.run_id: s.worker.pid for s in self.slots
                if s.run_id is not None and s.worker is not None
            }

    # ------------------------------------------------------------------------------ workers

    def warm(self, slot: Slot) -> None:
        """Start the slot's worker before its first run (a failure is logged, and retried when
        a run needs the worker)."""
        try:
            self.worker(slot)
        except RunWorkerError as exc:
            if not self._closed.is_set():
                log.error("%s", exc)

    def worker(self, slot: Slot) -> WorkerProcess:
        """The slot's worker, started (and waited for) if it has none."""
        with self._lock:
            worker = slot.worker
        if worker is not None:
            return worker
        if self._closed.is_set():
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
            if self._closed.is_set():
                worker.retire(kill=True)
                raise RunWorkerError(worker.pid, "the engine is closed")
            slot.worker = worker
        return worker

    def _retire(self, slot: Slot, *, replaced: bool = False) -> None:
        with self._lock:
            worker, slot.worker = slot.worker, None
        if worker is None:
            return
        worker.retire(kill=True)
        if replaced:
            self.replaced += 1

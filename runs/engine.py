"""Run engines: what executes queued runs. `RunEngine` is the interface the API needs;
`LocalEngine` is the embedded default (worker processes on this machine, state in the store);
`runs.distributed.ProcrastinateEngine` hands runs to `agentfactory worker` processes instead.

A distributed engine plugs in behind the same four calls: `submit` hands it a run id that is
already `queued` in the store, `cancel` asks it to stop a running one (the store has already
recorded the request), `start` and `close` bracket its life. Whatever the engine, the store's
claim/lease/finish protocol is what keeps results exactly-once-written under at-least-once
delivery, and `runs.slots.SlotPool` is what executes a delivered run (killable worker
processes, deadlines, lease renewal, cancel; its docstring states those invariants).

`LocalEngine` invariants:
- One thread per slot of its `SlotPool` (`workers` of them) takes run ids from the engine's
  queue and executes them in its slot, one at a time; a slot that ends a run while others wait
  takes the next one off the queue and claims it in the transaction that ends the first
  (`runs.slots.Chain`).
- A run given back to the store by a lost worker is queued here again at once.
- A sweeper thread expires stale leases and picks up queued runs this process was not told
  about (submitted through another API process, or left by a previous server) every `sweep_s`.
  At start, with `orphans=True` (this process is the database's only user, the embedded
  default), every run still `running` is given back at once: its server died.
- `on_change(run_id)` is called (from engine threads) after each state change the engine makes;
  `on_start(run_id)` and `on_final(run)`, if given, instead of it when a run starts and when a
  worker's outcome ends it (see `runs.slots`).
- `close()` stops the threads and kills and reaps every worker: none is left behind (a run in
  flight is given back to the store).
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
from collections.abc import Callable
from typing import Protocol

from runs.schemas import NewRun, RunPublic
from runs.settings import RunSettings
from runs.slots import START_TIMEOUT_S, FinalListener, Slot, SlotPool
from runs.store import RunStore
from runs.worker import WorkerConfig

log = logging.getLogger("agentfactory.runs")


Listener = Callable[[str], None]


class RunEngine(Protocol):
    """Executes runs the store holds as `queued`."""

    def start(self) -> None: ...

    async def create(
        self, publisher_id: int, new: NewRun, actor: str | None, bound: Listener
    ) -> tuple[RunPublic, bool] | None:
        """Create the run where this engine writes (`RunStore.create`: the run and whether it
        is new) and execute it; `bound(run_id)` is called before it can end. None when the
        engine does not create runs: the caller creates it in the store and `submit`s it.
        Awaited on the API's event loop: it must not block it."""
        ...

    def submit(self, run_id: str) -> None: ...

    def cancel(self, run_id: str) -> None: ...

    def close(self) -> None: ...


class LocalEngine:
    """The embedded engine: `settings.workers` worker processes fed from the store."""

    def __init__(
        self,
        store: RunStore,
        config: WorkerConfig | None = None,
        *,
        on_change: Listener | None = None,
        on_start: Listener | None = None,
        on_final: FinalListener | None = None,
        orphans: bool = False,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.settings: RunSettings = store.settings
        self.config = config or WorkerConfig()
        self.on_change = on_change or (lambda run_id: None)
        self.orphans = orphans
        self.owner = f"local-{os.getpid()}-{secrets.token_hex(4)}"
        self.pool = SlotPool(
            store, self.config, self.settings.workers, owner=self.owner,
            on_change=self.on_change, on_start=on_start, on_final=on_final,
            start_timeout_s=start_timeout_s,
        )
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._started = False

    @property
    def replaced(self) -> int:
        """Workers killed (deadline, cancel) or lost, and replaced."""
        return self.pool.replaced

    # ---------------------------------------------------------------------------- interface

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.orphans:
            for run_id in self.store.expire_leases(everything=True):
                self.on_change(run_id)
        for slot in self.pool.slots:
            self._spawn(f"run-slot-{slot.index}", self._serve, slot)
        self._spawn("run-sweeper", self._sweep)
        self._pick_up_queued()

    async def create(
        self, publisher_id: int, new: NewRun, actor: str | None, bound: Listener
    ) -> tuple[RunPublic, bool] | None:
        return None  # the caller's store is this engine's

    def submit(self, run_id: str) -> None:
        with self._lock:
            if run_id in self._pending or self._stop.is_set():
                return
            self._pending.add(run_id)
        self._queue.put(run_id)

    def cancel(self, run_id: str) -> None:
        # Not running here: a queued run is cancelled by the store alone.
        self.pool.cancel(run_id)

    def close(self) -> None:
        self._stop.set()
        for _ in self.pool.slots:
            self._queue.put(None)
        self.pool.stop()  # a run in flight ends as lost: it is given back to the store
        for thread in self._threads:
            thread.join(timeout=30)
        self.pool.close()

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return self.pool.pids()

    def running(self) -> dict[str, int]:
        """Run id -> pid of the worker executing it, for the runs executing now."""
        return self.pool.running()

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

    def _serve(self, slot: Slot) -> None:
        self.pool.warm(slot)  # before the first run arrives
        while not self._stop.is_set():
            run_id = self._queue.get()
            if run_id is None:
                return
            requeued = False
            try:
                requeued = self.pool.run(slot, run_id, chain=self)
            except Exception:
                log.exception("run %s: the engine failed", run_id)
            finally:
                with self._lock:
                    self._pending.discard(run_id)
            if requeued:
                self.submit(run_id)

    # A `runs.slots.Chain`: a slot ending a run claims the next queued one in the same commit.

    def next(self) -> str | None:
        try:
            run_id = self._queue.get_nowait()
        except queue.Empty:
            return None
        if run_id is None:  # the stop signal is for a slot's loop: leave it there
            self._queue.put(None)
        return run_id

    def done(self, run_id: str, requeued: bool) -> None:
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

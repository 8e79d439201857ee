"""The worker side of scale-out: `RemoteWorker` takes run jobs from procrastinate's `runs` queue
and executes them with the same `SlotPool` as the embedded engine (killable worker processes,
deadlines, leases, cancel). `agentfactory worker` runs one; any number may run, on any machine
that reaches the database. See `runs.distributed` for the queue's invariants.

Invariants of one worker:
- `concurrency` slots, so at most that many runs at once; procrastinate's own worker (asyncio)
  fetches a job only for a free slot, and each job runs its slot in a thread of its own.
- A job claims its run in the store; a run that is not `queued` any more makes it a no-op.
- An abort requested for a job (a cancel through the API) kills that run's worker process at
  once: the run ends `cancelled`. Any other abort (this worker stopping) kills it too, and the
  run goes back to the queue for another worker.
- Losing the database stops procrastinate's worker; this one starts it again after `sweep_s`
  and goes on until `stop()`. Runs in flight then are killed; their leases expire and they are
  delivered again. It never gives up on its own: an operator or a supervisor stops it.
- A sweeper expires stale leases and redelivers jobless queued runs every `sweep_s`, and closes
  the jobs of procrastinate workers that stopped beating (their runs are the leases' business).
- `stop()` (SIGINT, SIGTERM) kills every run worker (those runs go back to the queue) and ends
  `serve()`; no child process is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import procrastinate
from procrastinate.job_context import AbortReason, JobContext
from procrastinate.jobs import Status

from runs.distributed import QUEUE, TASK, RunQueue, conninfo, ensure_schema
from runs.schemas import RunPublic
from runs.slots import SlotPool, reason
from runs.store import RunStore
from runs.worker import WorkerConfig

log = logging.getLogger("agentfactory.runs")

HEARTBEAT_S = 5.0
"""Procrastinate's worker heartbeat; its jobs are stalled after `STALLED_S` without one."""
STALLED_S = 30.0
CONNECT_TIMEOUT_S = 5.0
"""How long a database call waits for a connection: an outage is noticed (and a stop is not
held up) after this long."""

Reporter = Callable[[RunPublic], None]


class RemoteWorker:
    """One `agentfactory worker`: `concurrency` slots fed by the `runs` queue of `database_url`."""

    def __init__(
        self,
        store: RunStore,
        database_url: str,
        config: WorkerConfig,
        *,
        concurrency: int,
        report: Reporter | None = None,
    ) -> None:
        self.store = store
        self.settings = store.settings
        self.queue = RunQueue(store.engine)
        self.report = report
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.concurrency = concurrency
        self.pool = SlotPool(
            store, config, concurrency, owner=self.owner, on_change=self._changed
        )
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(
            conninfo=conninfo(database_url), min_size=1, max_size=concurrency + 2,
            timeout=CONNECT_TIMEOUT_S,
        ))
        self.app.task(name=TASK, queue=QUEUE, pass_context=True)(self._job)
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="run-slot")
        self._stopping = asyncio.Event()
        self._current: asyncio.Task[None] | None = None

    def prepare(self) -> None:
        """Create procrastinate's schema if needed and let the store defer jobs (at start)."""
        ensure_schema(self.store.engine)
        self.store.enqueue = self.queue.enqueue

    async def serve(self) -> None:
        """Take jobs until `stop()`; restart procrastinate's worker after a database outage."""
        # Warm every slot before the first job (a slot is driven by one thread at a time).
        await asyncio.gather(*(asyncio.to_thread(self.pool.warm, s) for s in self.pool.slots))
        sweeper = asyncio.create_task(self._sweep())
        try:
            async with self.app.open_async():
                while not self._stopping.is_set():
                    self._current = asyncio.create_task(self.app.run_worker_async(
                        queues=[QUEUE], name=self.owner, concurrency=self.concurrency,
                        install_signal_handlers=False, delete_jobs="successful",
                        shutdown_graceful_timeout=0, update_heartbeat_interval=HEARTBEAT_S,
                        stalled_worker_timeout=STALLED_S,
                    ))
                    try:
                        await self._current
                    except asyncio.CancelledError:
                        if not self._stopping.is_set():
                            raise
                    except Exception as exc:
                        log.warning("worker lost the database, starting again: %s", reason(exc))
                        await self._pause()
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            self.pool.close()
            self._threads.shutdown(wait=True, cancel_futures=True)

    def stop(self) -> None:
        """Stop from the event loop's thread (a signal handler): runs in flight go back."""
        self._stopping.set()
        self.pool.stop()
        if self._current is not None:
            self._current.cancel()

    # ------------------------------------------------------------------------------ one job

    async def _job(self, context: JobContext, run_id: str) -> None:
        loop = asyncio.get_running_loop()
        running = loop.run_in_executor(self._threads, self._execute, run_id)
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            if context.abort_reason() == AbortReason.USER_REQUEST:
                self.pool.cancel(run_id)
            else:
                self.pool.kill(run_id)
            with contextlib.suppress(Exception):
                await running
            raise

    def _execute(self, run_id: str) -> None:
        try:
            self.pool.execute(run_id)  # a run given back was queued again with a new job
        except Exception as exc:  # the database failed mid-run: the lease will expire
            log.warning("run %s: %s", run_id, reason(exc))

    def _changed(self, run_id: str) -> None:
        try:
            self.queue.announce(run_id)
            if self.report is not None:
                self.report(self.store.get(run_id))
        except Exception as exc:
            log.warning("run %s: could not announce its change: %s", run_id, reason(exc))

    # ----------------------------------------------------------------------------- sweeping

    async def _sweep(self) -> None:
        every = self.settings.sweep_s
        rounds = 0
        while True:
            await self._pause(every)
            try:
                await asyncio.to_thread(self.queue.sweep, self.store)
                rounds += 1
                if rounds * every >= STALLED_S:
                    rounds = 0
                    await self._close_stalled_jobs()
            except Exception as exc:
                log.warning("run sweep failed: %s", reason(exc))

    async def _close_stalled_jobs(self) -> None:
        manager = self.app.job_manager
        for job in await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=STALLED_S):
            await manager.finish_job(job, status=Status.FAILED, delete_job=True)

    async def _pause(self, seconds: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds or self.settings.sweep_s)

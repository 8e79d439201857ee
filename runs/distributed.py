"""Scale-out: runs executed by `agentfactory worker` processes on any number of machines, fed
through a procrastinate queue that lives in the registry's own PostgreSQL database.

The API side is `ProcrastinateEngine` (`AGENTFACTORY_RUN_ENGINE=procrastinate`); the worker
side is `runs.remote.RemoteWorker`. Invariants:

- A run and its job are committed together: the engine sets `RunStore.enqueue`, so the
  transaction that makes a run `queued` (its creation, an expired lease, a lost worker) also
  defers its job (queue `runs`, task `agentfactory.run`, argument `run_id`). A job's queueing
  lock is its run id, so a run never has two jobs waiting; a job that cannot be deferred rolls
  back to a savepoint and leaves the run's own change intact.
- Delivery is at least once; results are written at most once by the store's claim/lease
  protocol. A job whose run is no longer `queued` (final, or running elsewhere) is a no-op.
- Every API process and every worker sweeps every `sweep_s`: it expires stale leases (a worker
  killed with -9 leaves its run `running` until its lease ends; the run is then queued again,
  with a new job, or failed `worker_lost` after `max_attempts`) and redelivers every queued run
  that has no job waiting or running (a job lost in any other way). Sweeps of many processes
  are safe together: the store locks each run's row.
- Cancel: the store records the request (the worker's next heartbeat kills the run); the engine
  also asks procrastinate to abort the run's job, which wakes its worker at once through
  LISTEN/NOTIFY.
- Workers announce every change they make on the channel `agentfactory_runs` (payload: the run
  id); each API process listens and wakes its own waiters (long polls, event streams).
- Procrastinate's schema is applied at start, by `ensure_schema`, when absent: under a
  PostgreSQL advisory lock and inside one transaction, so any number of API processes and
  workers may start at once and exactly one creates it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import procrastinate
from procrastinate.schema import SchemaManager
from sqlalchemy import func, make_url, text
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from runs.schemas import NewRun, RunPublic
from runs.slots import reason
from runs.store import RunStore

log = logging.getLogger("agentfactory.runs")

QUEUE = "runs"
TASK = "agentfactory.run"
CHANNEL = "agentfactory_runs"
# Any constant shared by all processes; it names the advisory lock of the schema's creation.
_SCHEMA_LOCK = 0x6166_7072_6F63_7261

Listener = Callable[[str], None]


def conninfo(database_url: str) -> str:
    """The libpq URL of a SQLAlchemy `postgresql+psycopg://` URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False
    )


def ensure_schema(engine: Engine) -> bool:
    """Create procrastinate's tables in `engine`'s database if they are absent; True if this
    call created them."""
    with engine.connect() as conn:
        conn.execute(sql_select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
        if conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None:
            conn.commit()
            return False
        schema = SchemaManager.get_schema()
        # Without parameters psycopg sends the script as it is (several statements, `%` signs).
        conn.connection.driver_connection.execute(schema)  # type: ignore[union-attr]
        conn.commit()
        return True


class RunQueue:
    """The runs' jobs in procrastinate, over connections of the registry's `engine`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Never opened: every call below brings its own connection.
        self.app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector())

    def enqueue(self, conn: Connection, run_id: str) -> None:
        """Defer `run_id`'s job inside the connection's transaction (`RunStore.enqueue`)."""
        try:
            with conn.begin_nested():
                self._defer(conn.connection.driver_connection, run_id)
        except procrastinate.exceptions.AlreadyEnqueued:
            pass  # a job already waits for this run

    def redeliver(self) -> list[str]:
        """Defer a job for every queued run that has none waiting or running; their ids."""
        with self.engine.begin() as conn:
            run_ids = list(conn.execute(text(
                "SELECT r.id FROM run r WHERE r.status = 'queued' AND NOT EXISTS ("
                " SELECT 1 FROM procrastinate_jobs j WHERE j.queueing_lock = r.id"
                " AND j.status IN ('todo', 'doing')) ORDER BY r.created_at LIMIT 1000"
            )).scalars())
            for run_id in run_ids:
                self.enqueue(conn, run_id)
        return run_ids

    def abort(self, run_id: str) -> None:
        """Ask the worker running `run_id`'s job to stop it now."""
        with Session(self.engine) as s:
            job_ids = s.execute(text(
                "SELECT id FROM procrastinate_jobs WHERE queueing_lock = :run_id"
                " AND status = 'doing'"
            ), {"run_id": run_id}).scalars().all()
            driver = s.connection().connection.driver_connection
            for job_id in job_ids:
                self.app.job_manager.cancel_job_by_id(job_id, abort=True, connection=driver)
            s.commit()

    def announce(self, run_id: str) -> None:
        """Tell the API processes that `run_id` changed."""
        with self.engine.begin() as conn:
            conn.execute(sql_select(func.pg_notify(CHANNEL, run_id)))

    def sweep(self, store: RunStore) -> list[str]:
        """Expire stale leases, then redeliver queued runs without a job; the runs changed."""
        return store.expire_leases() + self.redeliver()

    def _defer(self, driver: Any, run_id: str) -> None:
        self.app.configure_task(
            TASK, queue=QUEUE, queueing_lock=run_id, connection=driver
        ).defer(run_id=run_id)


class ProcrastinateEngine:
    """The API side: runs are deferred as jobs; `agentfactory worker` processes execute them."""

    def __init__(
        self, store: RunStore, database_url: str, *, on_change: Listener | None = None
    ) -> None:
        self.store = store
        self.database_url = database_url
        self.queue = RunQueue(store.engine)
        self.on_change = on_change or (lambda run_id: None)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        ensure_schema(self.store.engine)
        self.store.enqueue = self.queue.enqueue
        for target, name in ((self._sweep, "run-sweeper"), (self._listen, "run-listener")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    async def create(
        self, publisher_id: int, new: NewRun, actor: str | None, bound: Callable[[str], None]
    ) -> tuple[RunPublic, bool] | None:
        return None  # created by the API's store, whose transaction defers the job

    def submit(self, run_id: str) -> None:
        """Nothing left to do: the run's job was deferred in the run's own transaction."""

    def cancel(self, run_id: str) -> None:
        self.queue.abort(run_id)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _sweep(self) -> None:
        while True:
            try:
                for run_id in self.queue.sweep(self.store):
                    self.on_change(run_id)
            except Exception as exc:  # the database is away: the next sweep tries again
                log.warning("run sweep failed: %s", reason(exc))
            if self._stop.wait(self.store.settings.sweep_s):
                return

    def _listen(self) -> None:
        """Relay the workers' announcements to `on_change`, reconnecting after an outage."""
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo(self.database_url), autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=0.5):
                            self.on_change(notice.payload)
            except psycopg.Error as exc:
                log.warning("run listener lost the database, reconnecting: %s", reason(exc))
                self._stop.wait(self.store.settings.sweep_s)

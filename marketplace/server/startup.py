"""Start-up work and the embedded run engine when several API processes start at once.

Three locks, all released by the operating system or the database when their process dies, so
a killed process never leaves one behind:

- **The start-up turn** (`startup_turn`): of the processes starting together, exactly one does
  the start-up work (bootstrap of the built-in agents, orphan cleanup); the others wait until
  it is done and skip it. On PostgreSQL it is a session advisory lock (machines share nothing
  else); on SQLite a file lock (`fcntl.flock`) in the data directory. Migrations have their own
  lock (`registry.db.init_db`). A process started later, when nobody holds the turn, does the
  work again: all of it is idempotent.
- **Serving the home** (`HomeMembership`): every API process of a data directory holds a shared
  lock on `serving.lock` for its life. The start-up turn's winner first tries it exclusively:
  if that succeeds, no other process serves the home, and orphan blobs can go at once (no
  publish can be in flight); otherwise only those older than the grace period go.
- **The run engine** (`MachineEngine`): the embedded `LocalEngine` runs in one API process per
  data directory (per machine), the one holding `run-engine.lock`. The others execute nothing:
  a run they accept is a `queued` row, which the owner's sweeper picks up (within its
  `sweep_s`). They keep trying the lock, so when the owner dies, one of them takes over; since
  the lock proves no other engine of this home is alive, the new owner gives runs left
  `running` back to the queue at once when the database is the home's own SQLite.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from runs.engine import LocalEngine, RunEngine
from runs.engine_process import ProcessEngine
from runs.schemas import NewRun, RunPublic

log = logging.getLogger("agentfactory.marketplace")

# Any constant shared by all marketplace processes; it names the PostgreSQL advisory lock.
_STARTUP_LOCK = 0x6166_7374_6172_7475


class FileLock:
    """An `flock` on `path` (created if missing), exclusive or shared, held until `release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, shared: bool = False, wait: bool = True) -> bool:
        """Take (or convert) the lock; False if `wait` is off and another process holds it."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(self._fd, mode)
        except BlockingIOError:
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


@contextmanager
def startup_turn(engine: Engine, home: Path) -> Iterator[bool]:
    """True for the one process that does the start-up work now; the others (False) return
    only once it is done (see the module docstring)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            won = conn.execute(select(func.pg_try_advisory_lock(_STARTUP_LOCK))).scalar()
            conn.commit()
            try:
                if not won:
                    conn.execute(select(func.pg_advisory_lock(_STARTUP_LOCK)))
                    conn.commit()
                yield bool(won)
            finally:
                conn.execute(select(func.pg_advisory_unlock(_STARTUP_LOCK)))
                conn.commit()
        return
    lock = FileLock(home / "startup.lock")
    try:
        won = lock.acquire(wait=False)
        if not won:
            lock.acquire()  # until the winner is done
        yield won
    finally:
        lock.release()


class HomeMembership:
    """This process's shared hold on `home/serving.lock` (see the module docstring)."""

    def __init__(self, home: Path) -> None:
        self.lock = FileLock(home / "serving.lock")

    def join(self, *, inside_turn: bool) -> bool:
        """Hold the lock shared; True if no other process held it (tried only by the start-up
        turn's winner, `inside_turn`, so no one can join between the check and the hold)."""
        alone = inside_turn and self.lock.acquire(wait=False)
        self.lock.acquire(shared=True)
        return alone

    def leave(self) -> None:
        self.lock.release()


class MachineEngine:
    """A `RunEngine` that runs the machine's one embedded engine when this process holds the
    engine lock, and otherwise leaves runs queued for the process that does."""

    def __init__(
        self, make_engine: Callable[[], RunEngine], home: Path, retry_s: float = 1.0
    ) -> None:
        self.make_engine = make_engine
        self.lock = FileLock(home / "run-engine.lock")
        self.retry_s = retry_s
        self.engine: RunEngine | None = None
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def owner(self) -> bool:
        return self.engine is not None

    def start(self) -> None:
        if not self._take():
            self._thread = threading.Thread(target=self._follow, name="run-engine-follow",
                                            daemon=True)
            self._thread.start()

    async def create(
        self, publisher_id: int, new: NewRun, actor: str | None, bound: Callable[[str], None]
    ) -> tuple[RunPublic, bool] | None:
        engine = self.engine
        return None if engine is None else await engine.create(publisher_id, new, actor, bound)

    def submit(self, run_id: str) -> None:
        # Not the owner: the run is queued in the store; the owner's sweeper takes it.
        if self.engine is not None:
            self.engine.submit(run_id)

    def cancel(self, run_id: str) -> None:
        # Not the owner: the store holds the request; the owner's worker heartbeat sees it.
        if self.engine is not None:
            self.engine.cancel(run_id)

    def pids(self) -> list[int]:
        """Process ids of the live run workers of this process (none unless it is the owner)."""
        engine = self.engine
        return engine.pids() if isinstance(engine, LocalEngine | ProcessEngine) else []

    def running(self) -> dict[str, int]:
        """Run id -> worker pid of the runs executing in this process."""
        engine = self.engine
        return engine.running() if isinstance(engine, LocalEngine | ProcessEngine) else {}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._mutex:
            engine, self.engine = self.engine, None
        if engine is not None:
            engine.close()
        self.lock.release()

    def _take(self) -> bool:
        with self._mutex:
            if self._stop.is_set() or not self.lock.acquire(wait=False):
                return False
            self.engine = self.make_engine()
            self.engine.start()
        log.info("this process runs the embedded run engine (pid %d)", os.getpid())
        return True

    def _follow(self) -> None:
        while not self._stop.wait(self.retry_s):
            try:
                if self._take():
                    return
            except Exception:
                log.exception("cannot take over the run engine")

"""Cached answers follow writes made by any process: read your writes across API processes.

Every write to a package, its releases or its reviews signals the package's normalized name
from inside its own transaction (database triggers, migration 0010), so the signal exists if
and only if the write committed. A `ChangeFeed` turns those signals into
`ResponseCache.invalidate(name)` calls in this process, and `ResponseCache.lookup` asks the feed
before it answers from memory.

The guarantee: a request that *starts after* a writer's response was received (so after the
write committed, on any process) never gets a cached answer computed before that write. It does
not depend on how fast signals travel: `fresh()` returns only once every change committed
before it was called has been applied to the cache, or returns False, and the caller then reads
the database. A response computed while a write lands is not cached (`ResponseCache`'s
generations), so the cache never goes back to a value older than an applied change.

- `SqliteChangeFeed` (the embedded database, any number of processes on one machine): `fresh()`
  reads `PRAGMA data_version` on a connection of its own, which moves when another connection
  (any process) has committed; only then does it read the `package_change` rows past the last
  seq it saw (SQLite commits one writer at a time, so seqs follow commit order). A few
  microseconds per request, on the event loop.
- `PgChangeFeed` (PostgreSQL, any number of machines): a thread with a psycopg connection of
  its own LISTENs on `agentfactory_package` and applies each name as it arrives. `fresh()`
  waits for a *fence*: the thread sends `pg_notify` on `agentfactory_fence` on that connection
  and waits for it to come back. PostgreSQL keeps one notification queue in commit order and a
  listener reads it in order, so by the time a fence sent after the request started comes
  back, every notification of a transaction committed before the request has been read and
  applied. Requests waiting together share one fence, so the cost is one round trip per batch,
  not per request. While the connection is down (it reconnects with backoff), `fresh()` is
  False at once; once it is back, the whole cache is dropped after LISTEN is in place, since
  signals sent meanwhile are lost.
- `NullFeed`: one process with a private database (an in-memory SQLite): always fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import selectors
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("agentfactory.marketplace")

CHANNEL = "agentfactory_package"
FENCE_CHANNEL = "agentfactory_fence"
APPLICATION_NAME = "agentfactory-change-feed"  # how its connections show in pg_stat_activity


class Invalidate(Protocol):
    """What a feed needs of the cache."""

    def invalidate(self, name: str) -> None: ...

    def clear(self) -> None: ...


class ChangeFeed(Protocol):
    """Applies other processes' committed changes to this process's cache."""

    def start(self, cache: Invalidate) -> None: ...

    async def fresh(self) -> bool:
        """True once every change committed before the call is applied; False: the cache
        cannot be trusted now, read the database."""
        ...

    def close(self) -> None: ...


class NullFeed:
    """No other writer can exist: the cache is always current."""

    def start(self, cache: Invalidate) -> None:
        pass

    async def fresh(self) -> bool:
        return True

    def close(self) -> None:
        pass


class SqliteChangeFeed:
    """`PRAGMA data_version`, then the `package_change` rows past the last seq seen."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._cache: Invalidate | None = None
        self._lock = threading.Lock()
        self._version = -1
        self._seen = 0

    def start(self, cache: Invalidate) -> None:
        self._cache = cache
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        with self._lock:
            self._conn = conn
            self._version = conn.execute("PRAGMA data_version").fetchone()[0]
            self._seen = conn.execute(
                "SELECT coalesce(max(seq), 0) FROM package_change"
            ).fetchone()[0]

    async def fresh(self) -> bool:
        return self.poll()

    def poll(self) -> bool:
        """Apply what other connections committed since the last call (sync: microseconds)."""
        with self._lock:
            conn, cache = self._conn, self._cache
            if conn is None or cache is None:
                return False
            try:
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version == self._version:
                    return True
                rows = conn.execute(
                    "SELECT name, seq FROM package_change WHERE seq > ? ORDER BY seq",
                    (self._seen,),
                ).fetchall()
            except sqlite3.Error:
                log.warning("cannot read the database's changes; answering from it", exc_info=True)
                return False
            for name, seq in rows:
                cache.invalidate(name)
                self._seen = max(self._seen, seq)
            self._version = version
            return True

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class PgChangeFeed:
    """LISTEN in a thread; fences make `fresh()` exact (see the module docstring)."""

    def __init__(
        self, conninfo: str, *, fence_timeout_s: float = 2.0, max_backoff_s: float = 5.0
    ) -> None:
        self.conninfo = conninfo
        self.fence_timeout_s = fence_timeout_s
        self.max_backoff_s = max_backoff_s
        self._id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._cache: Invalidate | None = None
        self._lock = threading.Lock()
        self._connected = False
        self._sent = 0  # fences sent on the current connection
        self._in_flight = False
        # Requests waiting for the next fence to be sent, and for the one in flight.
        self._next: list[Waiter] = []
        self._flying: list[Waiter] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self, cache: Invalidate) -> None:
        self._cache = cache
        self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)
        self._thread.start()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until LISTEN is in place (start-up, tests)."""
        return self._listening.wait(timeout_s)

    async def fresh(self) -> bool:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        with self._lock:
            if not self._connected:
                return False
            # The next fence is sent after this point, so its return covers this request.
            self._next.append((loop, future))
            first = len(self._next) == 1
        if first:
            self._wake()  # the rest of the batch rides on the same fence
        late = loop.call_later(self.fence_timeout_s, _settle, [future], False)
        try:
            return await future
        finally:
            late.cancel()

    def close(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._fail_waiters()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ------------------------------------------------------------------------------- thread

    def _wake(self) -> None:
        # A full pipe already wakes the thread; a closed one means it stopped.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def _run(self) -> None:
        import psycopg

        backoff = 0.05
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.conninfo, autocommit=True, application_name=APPLICATION_NAME
                ) as conn:
                    # A fence is a throw-away transaction: no need to wait for its WAL flush.
                    conn.execute("SET synchronous_commit TO off")
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {FENCE_CHANNEL}")
                    assert self._cache is not None
                    self._cache.clear()  # whatever was signalled while not listening is lost
                    with self._lock:
                        self._connected, self._sent, self._in_flight = True, 0, False
                    self._listening.set()
                    backoff = 0.05
                    self._listen(conn)
            except Exception as exc:  # any database or network failure: reconnect
                if self._stop.is_set():
                    break
                log.warning("change feed: %s; reconnecting in %.2f s",
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                            backoff)
            finally:
                with self._lock:
                    self._connected = False
                self._listening.clear()
                self._fail_waiters()
            if self._stop.wait(backoff):
                break
            self.reconnects += 1
            backoff = min(self.max_backoff_s, backoff * 2)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(conn.fileno(), selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop.is_set():
                self._maybe_send_fence(conn)
                # Notifications that arrived while the fence was sent are already read off the
                # socket (psycopg keeps them): apply them now, not at the next wake-up.
                for notify in conn.notifies(timeout=0):
                    self._on_notify(notify.channel, notify.payload)
                if conn.closed or conn.broken:
                    raise ConnectionError("the listening connection was closed")
                if self._fence_wanted():
                    continue
                selector.select(timeout=1.0)
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 4096):
                        pass

    def _fence_wanted(self) -> bool:
        with self._lock:
            return not self._in_flight and bool(self._next)

    def _maybe_send_fence(self, conn: psycopg.Connection[Any]) -> None:
        if not self._fence_wanted():
            return
        with self._lock:
            self._sent += 1
            self._in_flight = True
            fence = self._sent
            self._flying, self._next = self._next, []
        conn.execute("SELECT pg_notify(%s, %s)", (FENCE_CHANNEL, f"{self._id}:{fence}"))

    def _on_notify(self, channel: str, payload: str) -> None:
        if channel == CHANNEL:
            assert self._cache is not None
            self._cache.invalidate(payload)
            return
        owner, _, number = payload.rpartition(":")
        if channel != FENCE_CHANNEL or owner != self._id or not number.isdigit():
            return  # another process's fence
        with self._lock:
            if int(number) != self._sent:
                return  # a fence of an earlier connection
            self._in_flight = False
            done, self._flying = self._flying, []
        _resolve(done, True)

    def _fail_waiters(self) -> None:
        with self._lock:
            waiters, self._next, self._flying = self._next + self._flying, [], []
            self._in_flight = False
        _resolve(waiters, False)


Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[bool]"]


def _settle(futures: list[asyncio.Future[bool]], value: bool) -> None:
    for future in futures:
        if not future.done():
            future.set_result(value)


def _resolve(waiters: list[Waiter], value: bool) -> None:
    """Settle the futures from this thread: one call into each event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[bool]]] = {}
    for loop, future in waiters:
        by_loop.setdefault(loop, []).append(future)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle, futures, value)


def feed_for(engine: Engine) -> ChangeFeed:
    """The feed that fits the registry's database."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PgChangeFeed(conninfo)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return SqliteChangeFeed(str(url.database))
    return NullFeed()


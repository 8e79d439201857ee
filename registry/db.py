"""Engines, transactions and the schema's migrations.

SQLite (the embedded default) is opened in WAL mode with foreign keys on and a busy timeout,
and `synchronous=NORMAL`: in WAL mode that never corrupts the database, and a power cut can
lose only the last commits, which is the usual trade for an order of magnitude more commits
per second (a commit no longer waits for an fsync). Python's sqlite3 module is told not to
manage transactions so that we can issue `BEGIN IMMEDIATE` for write transactions: a deferred
transaction that reads and then writes can fail with SQLITE_BUSY without waiting, while an
immediate one queues on the busy timeout. PostgreSQL is used as is, by URL, with the session
time zone pinned to UTC: the models store naive UTC timestamps, and PostgreSQL would otherwise
convert aware ones to the server's local time on the way in. Write paths lock the rows they
recompute (`SELECT ... FOR UPDATE`), which SQLite ignores and does not need.

On SQLite, `write_session` and `write_connection` also queue the threads of this process on one
lock per engine before `BEGIN IMMEDIATE`: SQLite's own busy handler, which is what a writer
otherwise waits on, sleeps between retries (1, 2, 5, 10... ms) and misses the moment the lock
is released, so under concurrency most of a write's time was spent asleep. For a database in a
file, the first of this process's threads in line then takes an exclusive `flock` on a file
beside it (`<database>.write-lock`), so the processes sharing the database (the API processes,
the run engine's process) queue in the kernel as well, and are woken the moment the lock is
free. A process that does not take it (the `sqlite3` shell) still meets the busy timeout.

The schema belongs to Alembic (`registry/migrations`): `init_db` upgrades any database to the
head revision, in one transaction under a migration lock (SQLite's write lock; a PostgreSQL
advisory lock), so several processes starting at once migrate it exactly once. A database
already at head costs one query. A database made before migrations existed (registry tables,
no `alembic_version`; only SQLite ever held one) is adopted when its tables match those of
revision 0001 (the search objects are (re)built, the revision stamped, later revisions applied)
and refused with `SchemaMismatch` otherwise: an unexplained schema is never altered silently.
Search objects that only one dialect has (the SQLite FTS5 table and its triggers, PostgreSQL's
`search_vector` column and its index) are created by the revisions and hidden from model
comparison by `include_object`.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, event, func, inspect, select
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, SQLModel, create_engine

from registry import models as _models  # noqa: F401  (registers the tables)
from registry.errors import SchemaMismatch

if TYPE_CHECKING:
    from alembic.config import Config

FTS_TABLE = "package_fts"
PG_SEARCH_COLUMN = "search_vector"
PG_SEARCH_INDEX = "ix_package_search_vector"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASE_REVISION = "0001"
# Any constant shared by all registry processes; it names the PostgreSQL advisory lock.
_MIGRATION_LOCK = 0x6166_7265_6769_7374
_WRITE_OPTION = "registry_write"
_WRITE = {_WRITE_OPTION: True}
_WRITE_BIND = "_agentfactory_write_bind"
WRITE_QUEUE_TIMEOUT_S = 30.0
"""How long a write waits for another process's hold of the database's write lock."""


def make_engine(url: str, *, busy_timeout_ms: int = 30_000) -> Engine:
    if url.startswith("postgresql"):
        return create_engine(
            url, pool_pre_ping=True, connect_args={"options": "-c timezone=UTC"}
        )
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    # The pool hands out the connection returned last: SQLite keeps a page cache per
    # connection and empties it when it finds the database changed by another connection, so
    # taking them in turn (the pool's default) made every transaction read its pages again.
    # (A database in memory has one connection per thread: no pool to order.)
    pooled = {} if in_memory(make_url(url)) else {"pool_use_lifo": True}
    engine = create_engine(url, connect_args={"check_same_thread": False}, **pooled)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see module docstring)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        # On the driver's connection: SQLAlchemy's statement machinery (events, a result) cost
        # more than SQLite takes to begin. Its error is wrapped as SQLAlchemy would have.
        try:
            conn.connection.dbapi_connection.execute(statement)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def in_memory(url: URL) -> bool:
    """Whether `url` is an SQLite database in memory (no file another process could open)."""
    database = url.database or ""
    return url.get_backend_name() == "sqlite" and (
        database in ("", ":memory:") or database.startswith("file::memory:")
        or url.query.get("mode") == "memory" or "mode=memory" in database
    )


def fts_available(engine: Engine) -> bool:
    """Whether the database has a full-text index (FTS5 on SQLite, tsvector on PostgreSQL)."""
    with engine.connect() as conn:
        inspector = inspect(conn)
        if is_sqlite(engine):
            return FTS_TABLE in inspector.get_table_names()
        if engine.dialect.name == "postgresql":
            columns = {c["name"] for c in inspector.get_columns("package")}
            return PG_SEARCH_COLUMN in columns
    return False


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Leave the dialect-specific search objects out of model/database comparisons."""
    if type_ == "table" and name is not None and name.startswith(FTS_TABLE):
        return False  # package_fts and its shadow tables (package_fts_data, ...)
    if type_ == "column" and name == PG_SEARCH_COLUMN:
        return False
    return not (type_ == "index" and name == PG_SEARCH_INDEX)


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration, built in code: no alembic.ini is needed at runtime."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def schema_differences(conn: Connection, expected: MetaData | None = None) -> list[str]:
    """How the database's tables differ from `expected` (default: the models); empty when they
    agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(
        conn, opts={"include_object": include_object, "compare_type": True}
    )
    target = SQLModel.metadata if expected is None else expected
    described = [_describe(diff) for diff in compare_metadata(context, target)]
    # What the database has and the models lack explains a refusal best; the list of tables
    # and indexes still to create, least.
    order = ("unexpected", "different", "missing column", "missing index", "missing")
    return sorted(described, key=lambda line: next(
        (i for i, prefix in enumerate(order) if line.startswith(prefix)), len(order)))


def _describe(diff: Any) -> str:
    """One line for an Alembic difference: ("add_column", schema, table, column) and kin."""
    if isinstance(diff, list):  # modify_* differences come grouped per column
        return "; ".join(_describe(d) for d in diff)
    kind, *args = diff
    what = {"add": "missing", "remove": "unexpected", "modify": "different"}.get(
        kind.split("_")[0], kind
    )
    noun = kind.split("_", 1)[-1].replace("_", " ")
    if kind in ("add_table", "remove_table"):
        return f"{what} table {args[0].name}"
    if kind in ("add_column", "remove_column"):
        return f"{what} column {args[1]}.{args[2].name}"
    if kind.startswith("modify_"):
        return f"{what} {noun} of {args[1]}.{args[2]}: {args[-2]!r} in the database"
    obj = args[0]
    table = getattr(getattr(obj, "table", None), "name", "?")
    return f"{what} {noun} {getattr(obj, 'name', None) or '(unnamed)'} on {table}"


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that no other `init_db` can enter at the same time."""
    bind = engine.execution_options(**_WRITE) if is_sqlite(engine) else engine
    with bind.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
        else:
            conn.execute(select(1))  # opens the (BEGIN IMMEDIATE) transaction
        yield conn
        conn.commit()


def _base_schema() -> MetaData:
    """The tables of the base revision, reflected from a scratch in-memory SQLite database."""
    from alembic import command

    scratch = create_engine("sqlite://")
    try:
        with scratch.begin() as conn:
            command.upgrade(alembic_config(conn), BASE_REVISION)
        schema = MetaData()
        schema.reflect(scratch)
        return schema
    finally:
        scratch.dispose()


def _adopt(conn: Connection) -> None:
    """Stamp a pre-migration database at the base revision, or refuse it."""
    from alembic import command
    from alembic.script import ScriptDirectory

    url = conn.engine.url.render_as_string(hide_password=True)
    if conn.dialect.name != "sqlite":
        reason = "registry tables but no alembic_version table"
        raise SchemaMismatch(url, [reason, *schema_differences(conn)])
    differences = schema_differences(conn, _base_schema())
    if differences:
        raise SchemaMismatch(url, differences)
    config = alembic_config(conn)
    base = ScriptDirectory.from_config(config).get_revision(BASE_REVISION)
    assert base is not None and base.module is not None
    base.module.create_search_objects(conn)
    command.stamp(config, BASE_REVISION)


def init_db(engine: Engine) -> None:
    """Bring the database to the head revision (see the module docstring)."""
    from alembic import command

    with _migration_lock(engine) as conn:
        if current_revision(conn) == head_revision():
            return
        if current_revision(conn) is None and "package" in inspect(conn).get_table_names():
            _adopt(conn)
        command.upgrade(alembic_config(conn), "head")


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


class _WriteQueue:
    """The queue for one SQLite database's write lock: this process's threads on a reentrant
    lock, then, around the outermost hold, an exclusive `flock` on `path` shared with the other
    processes (None: a database in memory, or a lock file that cannot be opened)."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        if path is not None:
            try:
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                self._fd = None  # a read-only directory: the busy timeout still applies

    def __enter__(self) -> None:
        self._lock.acquire()
        self._depth += 1
        if self._depth == 1 and self._fd is not None:
            try:
                self._flock(self._fd)
            except BaseException:
                self._depth -= 1
                self._lock.release()
                raise

    @staticmethod
    def _flock(fd: int) -> None:
        """Take the file lock, waiting at most `WRITE_QUEUE_TIMEOUT_S` (as SQLite's busy timeout
        would) for a process that holds it. Asked without blocking, then again after pauses of
        50 µs doubling to 2 ms: a blocking `flock` cannot be given a deadline."""
        pause, deadline = 0.00005, time.monotonic() + WRITE_QUEUE_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise OperationalError(
                        "(waiting for the database's write lock)", None,
                        sqlite3.OperationalError(
                            f"database is locked: another process held its write lock for "
                            f"{WRITE_QUEUE_TIMEOUT_S:g} s"
                        ),
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


_write_locks: weakref.WeakKeyDictionary[object, _WriteQueue] = weakref.WeakKeyDictionary()
_write_locks_guard = threading.Lock()


def _write_lock(engine: Engine) -> AbstractContextManager[object]:
    """This process's queue for `engine`'s SQLite write lock (see the module docstring)."""
    if not is_sqlite(engine):
        return nullcontext()
    with _write_locks_guard:  # one lock per pool: engines made by execution_options share it
        lock = _write_locks.get(engine.pool)
        if lock is None:
            database = engine.url.database
            path = None if in_memory(engine.url) else Path(f"{database}.write-lock")
            lock = _write_locks[engine.pool] = _WriteQueue(path)
    return lock


def _write_bind(engine: Engine) -> Engine:
    """`engine` with the option that makes its transactions `BEGIN IMMEDIATE` on SQLite, made
    once per engine (making one per transaction was a tenth of the run engine's time). It is
    kept on the engine itself: a cache keyed by the engine would keep it alive, since the
    option's engine refers to it."""
    if not is_sqlite(engine):
        return engine
    bind: Engine | None = engine.__dict__.get(_WRITE_BIND)
    if bind is None:
        bind = engine.__dict__[_WRITE_BIND] = engine.execution_options(**_WRITE)
    return bind


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction takes the write lock up front (SQLite) and commits on exit."""
    bind = _write_bind(engine)
    with _write_lock(engine), Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """`write_session` for SQLAlchemy Core: a connection in a write transaction (taking the
    write lock up front on SQLite) that commits on exit, or rolls back on an error."""
    with _write_lock(engine), _write_bind(engine).begin() as conn:
        yield conn

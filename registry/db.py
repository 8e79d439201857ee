"""Engines and transactions.

SQLite (the embedded default) is opened in WAL mode with foreign keys on and a busy timeout,
and `synchronous=NORMAL`: in WAL mode that never corrupts the database, and a power cut can
lose only the last commits, which is the usual trade for an order of magnitude more commits
per second (a commit no longer waits for an fsync). Python's sqlite3 module is told not to
manage transactions so that we can issue `BEGIN IMMEDIATE` for write transactions: a deferred
transaction that reads and then writes can fail with SQLITE_BUSY without waiting, while an
immediate one queues on the busy timeout. PostgreSQL is used as is, by URL; write paths lock
the rows they recompute (`SELECT ... FOR UPDATE`), which SQLite ignores and does not need.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, create_engine

from registry import models as _models  # noqa: F401  (registers the tables)

FTS_TABLE = "package_fts"
_WRITE = {"registry_write": True}


def make_engine(url: str, *, busy_timeout_ms: int = 30_000) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False})

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
        immediate = conn.get_execution_options().get("registry_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def fts_available(engine: Engine) -> bool:
    if not is_sqlite(engine):
        return False
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (FTS_TABLE,)
        ).first()
    return row is not None


def init_db(engine: Engine) -> None:
    """Create the tables (idempotent) and, on SQLite with FTS5, the search index."""
    SQLModel.metadata.create_all(engine)
    if not is_sqlite(engine):
        return
    # Without FTS5 compiled in, creation fails and search falls back to LIKE.
    with engine.begin() as conn, contextlib.suppress(OperationalError):
        conn.execute(
            text(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
                "name, summary, keywords, capabilities, templates, "
                "tokenize = 'unicode61 remove_diacritics 2')"
            )
        )


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction takes the write lock up front (SQLite) and commits on exit."""
    bind = engine.execution_options(**_WRITE) if is_sqlite(engine) else engine
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

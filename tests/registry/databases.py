"""Throw-away databases for the tests, on SQLite and on a real PostgreSQL server.

`scripts/pg start` (run by `scripts/test`) starts the server and the URL arrives in
`$AGENTFACTORY_TEST_PG_URL`. Each pytest process migrates one database of its own to head
(so parallel workers never share one) and every test starts from it emptied: all registry
tables truncated and their id sequences restarted, after ending any connection a previous
test left open. That gives each test the fresh state of a new database in about 20 ms, where
creating a database (even from a template) takes about 350 ms. Tests that need a database
with no schema at all (the migration tests) still get a new one. Without a URL the
PostgreSQL variants skip with the reason `scripts/test` recorded, except under `CI=true`,
where they fail: CI must prove both backends. The helpers are plain functions, so the
marketplace tests can reuse them.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.engine import URL, Engine
from sqlmodel import SQLModel

from registry.db import init_db, make_engine

PG_URL_VAR = "AGENTFACTORY_TEST_PG_URL"
PG_REASON_VAR = "AGENTFACTORY_TEST_PG_UNAVAILABLE"
BACKENDS = ("sqlite", "postgresql")


def pg_url_or_skip() -> str:
    """The server's URL, or skip (fail under CI) with the reason the server is missing."""
    url = os.environ.get(PG_URL_VAR)
    if url:
        return url
    reason = os.environ.get(PG_REASON_VAR) or (
        f"${PG_URL_VAR} is not set: start a server with `scripts/pg start` and export the URL "
        "it prints (scripts/test does both)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable: {reason}")


@dataclass
class PgServer:
    """Creates and drops databases on the test server (the role has CREATEDB)."""

    url: URL

    def _admin(self) -> Engine:
        # CREATE/DROP DATABASE cannot run inside a transaction.
        return make_engine(self.url.render_as_string(hide_password=False)).execution_options(
            isolation_level="AUTOCOMMIT"
        )

    def create(self, template: str | None = None) -> str:
        """A new empty (or template-copied) database; returns its URL."""
        name = f"af_test_{uuid.uuid4().hex[:16]}"
        engine = self._admin()
        try:
            with engine.connect() as conn:
                suffix = f" TEMPLATE {template}" if template else ""
                conn.execute(text(f"CREATE DATABASE {name}{suffix}"))
        finally:
            engine.dispose()
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        engine = self._admin()
        try:
            with engine.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        finally:
            engine.dispose()

    def migrated(self) -> str:
        """A new database at the head revision; returns its URL."""
        url = self.create()
        engine = make_engine(url)
        try:
            init_db(engine)
        finally:
            engine.dispose()
        return url

    def reset(self, url: str) -> None:
        """Empty every registry table of `url` and restart the ids, as in a new database."""
        names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                # A connection a previous test left open could hold a lock TRUNCATE waits on.
                # Only our own: autovacuum workers run as the superuser.
                conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND usename = current_user "
                    "AND pid <> pg_backend_pid()"
                ))
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        finally:
            engine.dispose()


def pg_server() -> PgServer:
    return PgServer(make_url(pg_url_or_skip()))

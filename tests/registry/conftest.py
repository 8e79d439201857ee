"""Fixtures: every registry test that touches the database runs on SQLite and on PostgreSQL.

`db_url` is parametrized over `BACKENDS`; tests ask for `registry` (or `db_url` when they
build their own `Registry`) and get the ids `[sqlite]` and `[postgresql]`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import LocalBlobStore, Registry, RegistryConfig
from registry.db import make_engine
from tests.registry.databases import BACKENDS, PgServer, pg_server
from tests.registry.factories import TestPublisher, make_publisher


@pytest.fixture(scope="session")
def pg() -> PgServer:
    return pg_server()


@pytest.fixture(scope="session")
def pg_database(pg: PgServer) -> Iterator[str]:
    url = pg.migrated()
    yield url
    pg.drop(url)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database at the head revision on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("pg_database")
    request.getfixturevalue("pg").reset(url)
    return url


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(make_engine(db_url), LocalBlobStore(tmp_path / "blobs"), RegistryConfig())
    yield reg
    reg.close()


@pytest.fixture
def acme(registry: Registry) -> TestPublisher:
    return make_publisher(registry, "acme")

"""What several API processes share through the database, on SQLite and PostgreSQL: cached
answers follow writes committed by another connection at once (`invalidation`), and rate
budgets are one per key across limiter instances (`ratelimit.DatabaseLimiter`).

Each "process" here is its own engine, connection and cache over one database: what separates
two API processes. The end-to-end proof with real processes is `test_scale.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from marketplace.server.api.cache import ResponseCache
from marketplace.server.invalidation import APPLICATION_NAME, PgChangeFeed, feed_for
from marketplace.server.ratelimit import DatabaseLimiter, RateLimited
from marketplace.server.settings import RateLimit
from registry import LocalBlobStore
from registry.db import make_engine
from registry.service import Registry
from tests.registry.databases import BACKENDS, pg_server
from tests.registry.factories import make_publisher, publish


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    server = pg_server()
    url = server.migrated()
    yield url
    server.drop(url)


@pytest.fixture
def writer(database: str, tmp_path: Path) -> Iterator[Registry]:
    registry = Registry(make_engine(database), LocalBlobStore(tmp_path / "blobs"))
    yield registry
    registry.close()


def follower(database: str) -> tuple[ResponseCache, Engine]:
    """Another process's cache, following the database's changes."""
    cache = ResponseCache(64, 3600.0)
    engine = make_engine(database)
    feed = feed_for(engine)
    cache.follow(feed)
    if isinstance(feed, PgChangeFeed):
        assert feed.wait_connected(10.0)
    return cache, engine


def lookup(cache: ResponseCache, name: str) -> bytes | None:
    return asyncio.run(cache.lookup("detail", name))


def test_a_write_committed_elsewhere_drops_that_package_at_once(
    database: str, writer: Registry
) -> None:
    acme = make_publisher(writer, "acme")
    publish(writer, acme, "acme/summarizer", "1.0.0")
    publish(writer, acme, "acme/other", "1.0.0")
    cache, engine = follower(database)
    try:
        for name in ("acme/summarizer", "acme/other"):
            cache.put("detail", name, b"old", cache.generation(name))
        assert lookup(cache, "acme/summarizer") == b"old"
        writer.yank(acme.principal, "acme/summarizer", "1.0.0", "broken")
        # No wait: the next lookup after the commit already misses; the other package stays.
        assert lookup(cache, "acme/summarizer") is None
        assert lookup(cache, "acme/other") == b"old"
        publish(writer, acme, "acme/summarizer", "1.1.0")
        cache.put("detail", "acme/summarizer", b"new", cache.generation("acme/summarizer"))
        writer.rate(make_publisher(writer, "bob").principal, "acme/summarizer", 4)
        assert lookup(cache, "acme/summarizer") is None
    finally:
        cache.feed.close()
        engine.dispose()


def test_a_lost_listener_answers_from_the_database_until_it_is_back(
    writer: Registry, database: str
) -> None:
    if not database.startswith("postgresql"):
        pytest.skip("only PostgreSQL has a listening connection to lose")
    cache, engine = follower(database)
    feed = cache.feed
    assert isinstance(feed, PgChangeFeed)
    try:
        cache.put("detail", "acme/summarizer", b"old", cache.generation("acme/summarizer"))
        with writer.engine.begin() as conn:  # what a server restart or a network cut does
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ), {"name": APPLICATION_NAME})
        # Until LISTEN is back, nothing is answered from memory; then the cache starts empty.
        deadline = time.monotonic() + 30
        while feed.reconnects < 1 or not feed.connected:
            assert time.monotonic() < deadline, "the change feed did not reconnect"
            time.sleep(0.01)  # a bounded poll while it reconnects
        assert lookup(cache, "acme/summarizer") is None
    finally:
        feed.close()
        engine.dispose()


def test_one_budget_per_key_across_processes(writer: Registry) -> None:
    now = [1_000_000.0]
    limit = RateLimit(4, 4 / 3600)
    first, second = (DatabaseLimiter(writer.engine, limit, "review", lambda: now[0])
                     for _ in range(2))
    first.acquire("account:1")
    first.acquire("account:1")
    second.acquire("account:1")
    second.acquire("account:1")
    with pytest.raises(RateLimited) as refused:
        second.acquire("account:1")
    assert refused.value.retry_after == 900  # a quarter of an hour earns one back
    first.acquire("account:2")  # another account has its own budget
    now[0] += 900
    assert first.remaining("account:1") == 1
    second.acquire("account:1")
    with pytest.raises(RateLimited):
        first.acquire("account:1")
    now[0] -= 5000  # a clock behind the others refills nothing and takes nothing back
    with pytest.raises(RateLimited):
        first.acquire("account:1")

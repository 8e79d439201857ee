"""Rate limits: one token bucket per key, behind the small `Limiter` interface.

Callers choose the key, and the key is never something the caller can mint: writes and token
minting are keyed by the account (`account_key`, the publisher id), so a new API token does not
bring a new budget; sign-ups are keyed by the client address (`client_address.rate_key`).

Invariants of `TokenBucketLimiter`: a bucket never holds more than `burst` tokens nor fewer than
zero; time comes only from the injected clock (tests drive it by hand, nothing sleeps); every
read-modify-write of the buckets happens under one lock, so the limiter is safe from the event
loop and from worker threads. Idle full buckets are dropped so the table does not grow with every
key ever seen. The buckets live in this process.

`DatabaseLimiter` keeps the same buckets in the registry's database, for several API processes
(`make_limiter` picks it when the database is shared): same arithmetic, done by one atomic
upsert per `acquire`, so whichever process answers, an account has one budget.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import Engine

from core.errors import AgentFactoryError
from marketplace.server.settings import RateLimit, ServerSettings
from registry.db import write_session
from registry.schemas import Principal


class RateLimited(AgentFactoryError):
    """Too many `action` requests for one key; `retry_after` is the wait in seconds (rounded
    up)."""

    def __init__(self, action: str, retry_after: float) -> None:
        self.action = action
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many {action} requests; retry in {self.retry_after} s")


class Limiter(Protocol):
    """What the server needs of a rate limiter: spend one unit of `key`'s budget for `action`,
    or raise `RateLimited` with the time until the next unit."""

    action: str

    def acquire(self, key: str) -> None: ...


def account_key(principal: Principal) -> str:
    """The budget key of a signed-in caller: its account, the same for every token it holds."""
    return f"account:{principal.publisher_id}"


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class TokenBucketLimiter:
    """`acquire(key)` spends one token of `key`'s bucket or raises `RateLimited`."""

    # Above this many buckets, full ones are swept on the next acquire.
    _SWEEP_AT = 10_000

    def __init__(
        self, limit: RateLimit, action: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.action = action
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> None:
        if not self.limit.enabled:
            return
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._SWEEP_AT:
                    self._sweep(now)
                bucket = self._buckets[key] = _Bucket(float(self.limit.burst), now)
            else:
                self._refill(bucket, now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = (1.0 - bucket.tokens) / self.limit.per_second
        raise RateLimited(self.action, wait)

    def remaining(self, key: str) -> int:
        """Whole tokens left for `key` now (for tests and headers)."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return self.limit.burst
            self._refill(bucket, self._clock())
            return int(bucket.tokens)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = max(0.0, now - bucket.stamp)  # a clock that steps back refills nothing
        bucket.tokens = min(
            float(self.limit.burst), bucket.tokens + elapsed * self.limit.per_second
        )
        bucket.stamp = now

    def _sweep(self, now: float) -> None:
        for key in list(self._buckets):
            bucket = self._buckets[key]
            self._refill(bucket, now)
            if bucket.tokens >= self.limit.burst:
                del self._buckets[key]


# One statement refills the bucket (capped at the burst), spends one token, and stamps it; the
# WHERE of DO UPDATE leaves an empty bucket untouched, so no row comes back: refused. A clock
# that steps back refills nothing and never moves the stamp back.
_SPEND = {
    "postgresql": """
INSERT INTO rate_bucket (action, key, tokens, stamp) VALUES (:action, :key, :burst - 1, :now)
ON CONFLICT (action, key) DO UPDATE SET
    tokens = least(:burst, rate_bucket.tokens
                   + greatest(0, :now - rate_bucket.stamp) * :rate) - 1,
    stamp = greatest(rate_bucket.stamp, :now)
WHERE least(:burst, rate_bucket.tokens + greatest(0, :now - rate_bucket.stamp) * :rate) >= 1
RETURNING tokens
""",
    "sqlite": """
INSERT INTO rate_bucket (action, key, tokens, stamp) VALUES (:action, :key, :burst - 1, :now)
ON CONFLICT (action, key) DO UPDATE SET
    tokens = min(:burst, rate_bucket.tokens + max(0, :now - rate_bucket.stamp) * :rate) - 1,
    stamp = max(rate_bucket.stamp, :now)
WHERE min(:burst, rate_bucket.tokens + max(0, :now - rate_bucket.stamp) * :rate) >= 1
RETURNING tokens
""",
}
_PEEK = "SELECT tokens, stamp FROM rate_bucket WHERE action = :action AND key = :key"
# Buckets idle long enough to be full again are the same as no bucket: dropped now and then.
_SWEEP = "DELETE FROM rate_bucket WHERE action = :action AND stamp < :before"


class DatabaseLimiter:
    """`TokenBucketLimiter`'s buckets in the registry's database (`rate_bucket`), so every API
    process, on any machine, spends from one budget per key. Each `acquire` is one atomic
    statement (an upsert that refills and spends, computed by the database), in a write
    transaction of its own. Time is seconds since the epoch from `clock` (the machines' clocks
    must roughly agree, as for anything dated), injected like the memory limiter's."""

    _SWEEP_EVERY = 1000

    def __init__(
        self, engine: Engine, limit: RateLimit, action: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if engine.dialect.name not in _SPEND:
            raise ValueError(f"no shared rate limits on {engine.dialect.name}")
        self.engine = engine
        self.limit = limit
        self.action = action
        self._clock = clock
        self._spend = text(_SPEND[engine.dialect.name])
        self._calls = 0

    def acquire(self, key: str) -> None:
        if not self.limit.enabled:
            return
        now = self._clock()
        params = {"action": self.action, "key": key, "burst": float(self.limit.burst),
                  "rate": self.limit.per_second, "now": now}
        with write_session(self.engine) as s:
            spent = s.execute(self._spend, params).first()
            if spent is None:
                row = s.execute(text(_PEEK), params).one()
        self._calls += 1
        if self._calls % self._SWEEP_EVERY == 0:
            self._sweep(now)
        if spent is not None:
            return
        tokens = min(float(self.limit.burst),
                     row.tokens + max(0.0, now - row.stamp) * self.limit.per_second)
        raise RateLimited(self.action, (1.0 - tokens) / self.limit.per_second)

    def remaining(self, key: str) -> int:
        """Whole tokens left for `key` now (for tests and headers)."""
        now = self._clock()
        with write_session(self.engine) as s:
            row = s.execute(text(_PEEK), {"action": self.action, "key": key}).first()
        if row is None:
            return self.limit.burst
        return int(min(float(self.limit.burst),
                       row.tokens + max(0.0, now - row.stamp) * self.limit.per_second))

    def _sweep(self, now: float) -> None:
        refill_s = self.limit.burst / self.limit.per_second
        with write_session(self.engine) as s:
            s.execute(text(_SWEEP), {"action": self.action, "before": now - refill_s})


def shared_limits(settings: ServerSettings) -> bool:
    """Whether rate budgets live in the database: `rate_limit_store` says so, or, by default
    (`auto`), when the database is shared by several processes (PostgreSQL, or `serve
    --workers N` over SQLite)."""
    if settings.rate_limit_store != "auto":
        return settings.rate_limit_store == "database"
    return settings.database_url is not None or settings.processes > 1


def make_limiter(
    settings: ServerSettings, engine: Engine, limit: RateLimit, action: str
) -> Limiter:
    """The limiter for `action`: in the database when budgets are shared, else in memory."""
    if shared_limits(settings):
        return DatabaseLimiter(engine, limit, action, settings.wall_clock)
    return TokenBucketLimiter(limit, action, settings.clock)

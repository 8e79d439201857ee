"""Rate limits: one token bucket per key, behind the small `Limiter` interface.

Callers choose the key, and the key is never something the caller can mint: writes and token
minting are keyed by the account (`account_key`, the publisher id), so a new API token does not
bring a new budget; sign-ups are keyed by the client address (`client_address.rate_key`).

Invariants of `TokenBucketLimiter`: a bucket never holds more than `burst` tokens nor fewer than
zero; time comes only from the injected clock (tests drive it by hand, nothing sleeps); every
read-modify-write of the buckets happens under one lock, so the limiter is safe from the event
loop and from worker threads. Idle full buckets are dropped so the table does not grow with every
key ever seen. The buckets live in this process; a limiter shared by several processes only has
to implement `Limiter`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core.errors import AgentFactoryError
from marketplace.server.settings import RateLimit
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

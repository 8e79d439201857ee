"""An in-process cache of encoded read responses (package detail, versions, rating).

Invariants: entries are immutable bytes, keyed by `(kind, normalized package name)`; any write to
a package (publish, yank, unyank, review, reply, download count) calls `invalidate(name)`, which
drops every kind for that name and bumps the name's generation. A reader that fetched from the
database stores its result only if the generation did not move while it was reading, so a
response computed before a write can never be cached after it. Writes made by other processes
arrive through the cache's `ChangeFeed` (`marketplace.server.invalidation`): `lookup` answers
from memory only once the feed says every change committed before the call is applied, so a
request that starts after any process acknowledged a write never sees an answer older than it.
Entries also expire after `ttl` seconds (an age bound on memory, not what keeps answers
current). LRU-bounded; one lock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from typing import Any

from marketplace.server.invalidation import ChangeFeed, NullFeed

Key = tuple[str, str]
_CURRENT = "agentfactory.cache_current"  # set in a request's scope once its feed check passed


class ResponseCache:
    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[Key, tuple[float, bytes]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._epoch = 0  # bumped by clear(), which invalidates names never seen before too
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.feed: ChangeFeed = NullFeed()

    def follow(self, feed: ChangeFeed) -> None:
        """Take other processes' changes from `feed` (started here, closed by the caller)."""
        self.feed = feed
        feed.start(self)

    async def lookup(
        self, kind: str, name: str, scope: MutableMapping[str, Any] | None = None
    ) -> bytes | None:
        """`get`, once the feed has applied every change committed before this call; None
        (read the database) when it cannot say. `scope` is the request's ASGI scope: the feed
        is asked once per request (what held when it began holds for all of it)."""
        if scope is None or not scope.get(_CURRENT):
            if not await self.feed.fresh():
                with self._lock:
                    self.misses += 1
                return None
            if scope is not None:
                scope[_CURRENT] = True
        return self.get(kind, name)

    def get(self, kind: str, name: str) -> bytes | None:
        key = (kind, name)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self._clock():
                if entry is not None:
                    del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def generation(self, name: str) -> tuple[int, int]:
        with self._lock:
            return self._epoch, self._generations.get(name, 0)

    def put(self, kind: str, name: str, value: bytes, generation: tuple[int, int]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            if (self._epoch, self._generations.get(name, 0)) != generation:
                return  # a write happened while this value was computed: it may be stale
            self._entries[(kind, name)] = (self._clock() + self.ttl, value)
            self._entries.move_to_end((kind, name))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def invalidate(self, name: str) -> None:
        with self._lock:
            self._generations[name] = self._generations.get(name, 0) + 1
            for key in [k for k in self._entries if k[1] == name]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._entries.clear()

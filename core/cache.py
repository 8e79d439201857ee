"""A small LRU + TTL cache of resolved templates.

Not thread-safe by itself: `TemplateManager` calls it only while holding its lock, which also
guards the hit/miss counters, so a hit is one lock, one dict lookup and one `move_to_end`.
Time comes from the caller (`now`), which is how tests drive expiry without sleeping.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float


class LruTtlCache(Generic[V]):
    """At most `size` entries; an entry older than `ttl_s` is a miss; LRU entries go first."""

    def __init__(self, size: int, ttl_s: float) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self.evictions = 0
        self.expirations = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str, now: float) -> V | None:
        """The fresh value for `key`, or None (an expired entry is dropped and counted)."""
        return self.lookup(key, now)[0]

    def lookup(self, key: str, now: float) -> tuple[V | None, V | None]:
        """`(fresh value, None)` on a hit; `(None, expired value)` if the entry had expired (it
        is dropped and counted); `(None, None)` if absent."""
        entry = self._entries.get(key)
        if entry is None:
            return None, None
        if entry.expires_at <= now:
            del self._entries[key]
            self.expirations += 1
            return None, entry.value
        self._entries.move_to_end(key)
        return entry.value, None

    def peek(self, key: str, now: float) -> V | None:
        """The value `lookup(key, now)` would hit, or None; nothing is changed or counted."""
        entry = self._entries.get(key)
        return entry.value if entry is not None and entry.expires_at > now else None

    def put(self, key: str, value: V, now: float) -> None:
        self._entries[key] = _Entry(value, now + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
            self.evictions += 1

    def clear(self) -> None:
        self._entries.clear()

    def keys(self) -> list[str]:
        """Keys from least to most recently used."""
        return list(self._entries)

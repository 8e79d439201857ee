"""Wake the coroutines waiting for a run to change (long polls, event streams).

`notify(run_id)` may be called from any thread (engine threads, request threads);
`subscribe(run_id)` is used on an event loop. A subscriber clears its flag *before* reading the
store and waits only if what it read is not final, so a change between the read and the wait
is never missed. Notification is an optimization for this process: waiters also wake after
their own timeout and read the store again, which is how changes made by other processes (a
distributed engine, another API worker) are seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class Subscription:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()

    def clear(self) -> None:
        self.event.clear()

    async def wait(self, timeout: float) -> bool:
        """True when notified within `timeout` seconds."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class RunWatch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscription]] = {}

    def notify(self, run_id: str) -> None:
        with self._lock:
            subscribers = list(self._subscribers.get(run_id, ()))
        for sub in subscribers:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits anymore
                sub.loop.call_soon_threadsafe(sub.event.set)

    @contextlib.contextmanager
    def subscribe(self, run_id: str) -> Iterator[Subscription]:
        sub = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._subscribers.setdefault(run_id, set()).add(sub)
        try:
            yield sub
        finally:
            with self._lock:
                subs = self._subscribers.get(run_id)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._subscribers[run_id]

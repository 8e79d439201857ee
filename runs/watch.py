"""Wake the coroutines waiting for a run to change (long polls, event streams).

`notify(run_id)` may be called from any thread (engine threads, request threads);
`subscribe(run_id)` is used on an event loop. A subscriber clears its flag *before* reading the
store and waits only if what it read is not final, so a change between the read and the wait
is never missed. Notification is an optimization for this process: waiters also wake after
their own timeout and read the store again, which is how changes made by other processes (a
distributed engine, another API worker) are seen.

`progress(run_id)` is `notify` for a change that cannot be the run's end (it started): it wakes
only the subscriptions that follow every change (`progress=True`, event streams), not those
waiting for the end (long polls), which would otherwise read the store for nothing.
`settle(run)` is `notify` for a run that just ended, carrying the run as it was written: a
subscriber finds it in `final` and answers without reading the store again. A subscription can
also be opened before its run exists (`watching()`) and bound to it (`bind`) once created, so
a run that ends at once is not missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runs.schemas import RunPublic


class Subscription:
    def __init__(self, loop: asyncio.AbstractEventLoop, progress: bool) -> None:
        self.loop = loop
        self.progress = progress
        self.event = asyncio.Event()
        self.final: RunPublic | None = None
        self.run_id: str | None = None
        self.closed = False  # its `watching` block is over: `bind` must not register it

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
        self._wake(run_id, None)

    def progress(self, run_id: str) -> None:
        """A change that does not end the run: wake the subscribers that follow progress."""
        self._wake(run_id, None, progress_only=True)

    def settle(self, run: RunPublic) -> None:
        """`run` has ended and is written as it is: wake its subscribers with it."""
        self._wake(run.id, run)

    def _wake(self, run_id: str, final: RunPublic | None, *, progress_only: bool = False) -> None:
        with self._lock:
            subscribers = [
                sub for sub in self._subscribers.get(run_id, ())
                if sub.progress or not progress_only
            ]
            if final is not None:
                for sub in subscribers:
                    sub.final = final
        for sub in subscribers:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits anymore
                sub.loop.call_soon_threadsafe(sub.event.set)

    @contextlib.contextmanager
    def subscribe(self, run_id: str, *, progress: bool = True) -> Iterator[Subscription]:
        with self.watching(progress=progress) as sub:
            self.bind(sub, run_id)
            yield sub

    @contextlib.contextmanager
    def watching(self, *, progress: bool = True) -> Iterator[Subscription]:
        """A subscription to no run yet (see `bind`), dropped on exit; with `progress=False`,
        woken by the changes that may end the run only."""
        sub = Subscription(asyncio.get_running_loop(), progress)
        try:
            yield sub
        finally:
            with self._lock:
                sub.closed = True
                subs = self._subscribers.get(sub.run_id or "")
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._subscribers[sub.run_id or ""]

    def bind(self, sub: Subscription, run_id: str) -> None:
        """Make `sub` (from `watching`, bound to no run yet) a subscriber of `run_id`; may be
        called from any thread; a subscription whose waiter has gone (its `watching` block
        ended, say the request was cancelled) is left out."""
        with self._lock:
            if sub.closed:
                return
            assert sub.run_id is None, "a subscription follows one run"
            sub.run_id = run_id
            self._subscribers.setdefault(run_id, set()).add(sub)

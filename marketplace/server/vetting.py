"""The marketplace's vetter: a package's own examples run in the sandbox before it is published.

The registry stays independent of the sandbox; this adapter is what joins them. A package whose
examples fail is refused (`registry.errors.VettingFailed`, naming each failing example); one
without examples is published as "unvetted"; the sandbox's full report is stored on the release
and shown on its page. Installers vet again on their own machine: this report informs, it is
not trusted by them.

Vetting is bounded, because anyone with an account can upload examples that spin or block:

- what: at most `ManifestLimits.examples` examples (refused when the manifest is parsed, naming
  the field), each under the settings' fuel and deadline, all of one upload within
  `vet_upload_budget_s` (examples left when it is spent are not run, and the upload fails
  vetting saying so); a `matches` pattern RE2 cannot run (a backreference, lookaround) is
  refused before anything runs, naming the example (`ManifestError`, 422);
- how many at once: `VettingGate` admits at most `vet_per_publisher` uploads per account and
  `vet_concurrency` in all (by default the sandbox pool's size, so an admitted upload never
  waits for a worker). An account at its cap gets 429 at once; an upload that finds every
  slot taken waits up to `vet_queue_s` for one, then gets 429. Both carry `Retry-After`: when
  the earliest vetting in its way must have ended (`VettingBusy`, a `RateLimited`);
- where: admission is decided on the event loop without blocking it, before the upload's body
  is read, so refused and waiting uploads hold no worker thread and no memory for their bytes;
  the admitted upload's registry call (preflight, vetting, write) runs in the threadpool, and
  the examples in sandbox worker processes (`sandbox.pool`), never on the event loop thread.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from marketplace.server.ratelimit import RateLimited
from marketplace.server.settings import ServerSettings
from registry.archive import Package
from registry.errors import ManifestError
from registry.publish import Vetter, VettingOutcome
from sandbox import Sandbox, SandboxLimits
from sandbox.pool import default_size
from sandbox.vetting import VettingReport, pattern_errors, vet

SHOWN_ERRORS = 20


class VettingBusy(RateLimited):
    """No vetting slot for this upload: its account already has `limit` uploads in vetting
    (`scope` "account"), or all `limit` slots of the server stayed taken while it waited
    (`scope` "server"). Answered as 429 with `Retry-After`."""

    def __init__(self, scope: str, limit: int, retry_after: float) -> None:
        super().__init__("vetting", retry_after)
        self.scope = scope
        self.limit = limit
        plural = "s" if limit != 1 else ""
        if scope == "account":
            what = f"this account already has {limit} upload{plural} being vetted (the most "
            what += "it may have at once)"
        else:
            what = f"all {limit} vetting slot{plural} of this server are busy"
        self.args = (f"{what}; retry in {self.retry_after} s",)


@dataclass
class _Slot:
    key: str
    started: float


class VettingGate:
    """Admission to vetting, per account and in total (see the module's docstring).

    Thread-safe, and usable from any event loop: counts are kept under a lock, and a freed slot
    wakes every waiter through its own loop (`call_soon_threadsafe`), each of which then tries
    again. A waiter that is cancelled (its client went away) or times out leaves no trace.
    """

    def __init__(
        self, per_account: int, total: int, queue_s: float, slot_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_account < 1 or total < 1:
            raise ValueError("a vetting gate needs at least one slot per account and in total")
        self.per_account = per_account
        self.total = total
        self.queue_s = queue_s
        self.slot_s = slot_s  # how long an admitted upload can hold its slot, at most
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}  # per account: admitted or waiting
        self._slots: dict[int, _Slot] = {}
        self._ids = itertools.count()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> VettingGate:
        total = settings.vet_concurrency or default_size()
        # Preflight and the write around the vetting take milliseconds; a second of slack.
        return cls(settings.vet_per_publisher, total, settings.vet_queue_s,
                   settings.vet_upload_budget_s + 1.0, settings.clock)

    @property
    def active(self) -> int:
        """Uploads admitted now."""
        with self._lock:
            return len(self._slots)

    @asynccontextmanager
    async def admit(self, key: str) -> AsyncIterator[None]:
        """Hold one slot for account `key` while the block runs, or raise `VettingBusy`."""
        with self._lock:
            if self._held.get(key, 0) >= self.per_account:
                raise VettingBusy("account", self.per_account, self._retry_after(key))
            self._held[key] = self._held.get(key, 0) + 1
        try:
            slot = await self._take(key)
            try:
                yield
            finally:
                self._free(slot)
        finally:
            with self._lock:
                self._held[key] -= 1
                if not self._held[key]:
                    del self._held[key]

    async def _take(self, key: str) -> int:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.queue_s
        while True:
            with self._lock:
                if len(self._slots) < self.total:
                    slot = next(self._ids)
                    self._slots[slot] = _Slot(key, self._clock())
                    return slot
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, waiter))
            try:
                left = give_up - loop.time()
                if left <= 0:
                    raise TimeoutError
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                with self._lock:
                    retry_after = self._retry_after(None)
                raise VettingBusy("server", self.total, retry_after) from None
            finally:
                with self._lock:
                    if (loop, waiter) in self._waiters:
                        self._waiters.remove((loop, waiter))

    def _free(self, slot: int) -> None:
        with self._lock:
            del self._slots[slot]
            waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            loop.call_soon_threadsafe(_wake, waiter)

    def _retry_after(self, key: str | None) -> float:
        """Seconds until the earliest slot in the caller's way must be free (account `key`'s
        own slots, or any slot); a full `slot_s` when none has started yet. Under the lock."""
        with_key = [s.started for s in self._slots.values() if key is None or s.key == key]
        if not with_key:
            return self.slot_s
        return max(1.0, min(with_key) + self.slot_s - self._clock())


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def outcome_of(report: VettingReport) -> VettingOutcome:
    """The registry's view of a sandbox report: status, full JSON, one line per failure."""
    failures = tuple(
        f"example {example.name!r}: {'; '.join(example.failures) or example.status.value}"
        for example in report.examples
        if not example.passed
    )
    return VettingOutcome(report.status.value, report.to_json(), failures)


def vetting_limits(settings: ServerSettings) -> SandboxLimits:
    """The sandbox limits of each example at publish, from the server's settings."""
    return SandboxLimits(fuel=settings.vet_example_fuel, timeout_s=settings.vet_example_timeout_s)


def publish_vetter(
    settings: ServerSettings | None = None, sandbox: Sandbox | None = None,
    limits: SandboxLimits | None = None,
) -> Vetter:
    """A `Vetter` running each package's examples in `sandbox` (one shared by all threads),
    within the per-example limits and the per-upload budget of `settings`."""
    settings = settings or ServerSettings()
    shared = sandbox or Sandbox()
    example_limits = limits or vetting_limits(settings)
    budget_s = settings.vet_upload_budget_s

    def vet_package(package: Package) -> VettingOutcome:
        errors = pattern_errors(package.manifest)
        if errors:  # at most 20 x 50 checks; the first few say enough
            shown = errors[:SHOWN_ERRORS]
            if len(errors) > SHOWN_ERRORS:
                shown.append(("examples", f"and {len(errors) - SHOWN_ERRORS} more patterns"))
            raise ManifestError("agent.json", shown)
        return outcome_of(vet(package, shared, example_limits, budget_s=budget_s))

    return vet_package

"""Budgets: refused before a call when the estimate cannot fit, settled after from the usage.

Scopes, each in tokens and in USD (`models.config.Budgets`): the call itself, the run
(`CallContext.run_id`), the agent since 00:00 UTC and the account since 00:00 UTC. Order of a
call: `reserve` (estimate: input tokens from the text length, output tokens = the call's
`max_tokens`; cost from the price table) → the provider call → `settle` (the reported usage is
recorded in the ledger, the reservation released). Either step raises `BudgetExceeded` naming the
scope and the figures; a settled call that went over is recorded all the same (it was spent) and
its answer withheld.

What each step sees (the ledger keeps a running total per scope, see `models.ledger`):

- `settle` records the usage and gets back, from the same transaction, the totals with it
  included: these count every settled call of every process sharing the ledger, so the call that
  takes a scope over its limit, whichever process made the others, gets `BudgetExceeded` (its
  spend stays recorded). The guard keeps these totals as what it knows of each scope.
- `reserve` checks the estimate against what the guard knows of the call's limited scopes, plus
  the calls in flight in this process (their reservations), so concurrent calls of one process
  cannot together pass a limit that each alone would fit. A total known for more than `fresh_s`
  seconds (default 1 s), or never, is read from the ledger first (one point read for all of the
  call's scopes). A known total is exact for this process's own calls and a lower bound for the
  others': what other processes settled in the last `fresh_s` seconds, like what they have in
  flight, is not seen before a call. Processes that share a budget can therefore overshoot it
  by at most the calls each lets through in that window; each such call is refused when it
  settles (its answer withheld), and the next is refused before it is sent. `fresh_s=0` reads
  the ledger before every call (then only calls in flight elsewhere are unseen).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from models.config import Budgets
from models.errors import BudgetExceeded
from models.ledger import Spend, SpendLedger, TotalKey, UsageEntry, total_keys
from models.types import CallContext, Usage

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """A cautious estimate of the tokens of `text` (4 characters a token, at least 1)."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


@dataclass(frozen=True, slots=True)
class Estimate:
    tokens: int
    cost: float


@dataclass(frozen=True, slots=True)
class Reservation:
    """What each limited scope had spent (settled) when the call was let through."""

    before: dict[str, Spend]


class BudgetGuard:
    """Checks and settles the budgets of calls against one ledger. Thread-safe."""

    def __init__(
        self, budgets: Budgets, ledger: SpendLedger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC), fresh_s: float = 1.0,
    ) -> None:
        self.budgets = budgets
        self.ledger = ledger
        self.clock = clock
        self.fresh_s = fresh_s
        self._lock = threading.Lock()
        self._pending: dict[TotalKey, Spend] = {}
        self._known: dict[TotalKey, tuple[Spend, datetime]] = {}  # a total, and when it was

    def _learn(self, totals: dict[TotalKey, Spend], now: datetime) -> None:
        """Remember `totals` as of `now` (under the lock). Totals only grow, so a smaller one
        is older news and does not replace what is known."""
        if len(self._known) > 4096:  # forget what is too old to be used
            self._known = {k: v for k, v in self._known.items() if self._fresh(v[1], now)}
        for key, total in totals.items():
            known = self._known.get(key)
            if known is None or (total.tokens, total.cost) >= (known[0].tokens, known[0].cost):
                self._known[key] = (total, now)

    def _fresh(self, when: datetime, now: datetime) -> bool:
        return 0 <= (now - when).total_seconds() < self.fresh_s

    def _settled(self, keys: list[TotalKey]) -> dict[TotalKey, Spend]:
        """What is known of `keys`, reading the ledger for those not known lately (under the
        lock)."""
        now = self.clock()
        stale = [key for key in keys
                 if key not in self._known or not self._fresh(self._known[key][1], now)]
        if stale:
            self._learn(self.ledger.spent_in(stale), now)
        return {key: self._known[key][0] for key in keys}

    def _scopes(self, ctx: CallContext) -> list[TotalKey]:
        """The running totals of a call's scopes that have a limit."""
        today = self.clock().astimezone(UTC).date()
        keys = total_keys(ctx.account, ctx.agent, ctx.run_id, today)
        return [key for key in keys if self._has_limits(key.scope)]

    def _limits(self, scope: str) -> tuple[int | None, float | None]:
        b = self.budgets
        return getattr(b, f"{scope}_tokens"), getattr(b, f"{scope}_cost")

    def _check(self, scope: str, spent: Spend, tokens: int, cost: float, when: str) -> None:
        token_limit, cost_limit = self._limits(scope)
        if token_limit is not None and spent.tokens + tokens > token_limit:
            raise BudgetExceeded(f"{scope}.tokens", token_limit, spent.tokens, tokens,
                                 "tokens", when)
        if cost_limit is not None and spent.cost + cost > cost_limit + 1e-12:
            raise BudgetExceeded(f"{scope}.cost", cost_limit, spent.cost, cost, "usd", when)

    def _has_limits(self, scope: str) -> bool:
        return any(limit is not None for limit in self._limits(scope))

    @contextmanager
    def reserve(self, ctx: CallContext, estimate: Estimate) -> Iterator[Reservation]:
        """Refuse the call if `estimate` cannot fit a scope; hold it as pending meanwhile."""
        self._check("call", Spend(), estimate.tokens, estimate.cost, "before")
        held: list[TotalKey] = []
        reservation = Reservation({})
        with self._lock:
            keys = self._scopes(ctx)
            settled = self._settled(keys)
            for key in keys:
                pending = self._pending.get(key, Spend())
                done = settled[key]
                reservation.before[key.scope] = done
                self._check(key.scope, Spend(done.tokens + pending.tokens,
                                             done.cost + pending.cost),
                            estimate.tokens, estimate.cost, "before")
                held.append(key)
            for key in held:
                pending = self._pending.get(key, Spend())
                self._pending[key] = Spend(pending.tokens + estimate.tokens,
                                           pending.cost + estimate.cost)
        try:
            yield reservation
        finally:
            with self._lock:
                for key in held:
                    pending = self._pending[key]
                    left = Spend(pending.tokens - estimate.tokens, pending.cost - estimate.cost)
                    if left.tokens <= 0 and left.cost <= 1e-12:
                        del self._pending[key]
                    else:
                        self._pending[key] = left

    def settle(self, ctx: CallContext, usage: Usage, reservation: Reservation) -> None:
        """Record `usage`; raise `BudgetExceeded` if it took a scope over its limit (counted
        from the totals the ledger returns with the write: one transaction, no other read)."""
        now = self.clock()
        after = self.ledger.record(UsageEntry(
            at=now, account=ctx.account, agent=ctx.agent, run_id=ctx.run_id,
            provider=usage.provider, model=usage.model, input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens, cost=usage.cost, latency_ms=usage.latency_ms,
        ))
        with self._lock:
            self._learn(after, now)
        self._check("call", Spend(), usage.tokens, usage.cost, "after")
        for key, total in after.items():
            if self._has_limits(key.scope):
                before = Spend(total.tokens - usage.tokens, total.cost - usage.cost)
                self._check(key.scope, before, usage.tokens, usage.cost, "after")

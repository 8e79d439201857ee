"""Budgets: refused before a call when the estimate cannot fit, settled after from the usage.

Scopes, each in tokens and in USD (`models.config.Budgets`): the call itself, the run
(`CallContext.run_id`), the agent since 00:00 UTC and the account since 00:00 UTC. Order of a
call: `reserve` (estimate: input tokens from the text length, output tokens = the call's
`max_tokens`; cost from the price table) → the provider call → `settle` (the reported usage is
recorded in the ledger, the reservation released). Either step raises `BudgetExceeded` naming the
scope and the figures; a settled call that went over is recorded all the same (it was spent) and
its answer withheld. Settling checks the usage against the spend `reserve` read (one write, no
read), so calls settled by other processes in between are seen by the next call, not this one.

Invariant: calls in flight in this process count against their scopes through their
reservations, so concurrent calls cannot together pass a limit that each alone would fit
(other processes sharing the ledger see settled spend only).
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
from models.ledger import Spend, SpendLedger, UsageEntry
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


Scope = tuple[str, str]  # ("run" | "agent_day" | "account_day", its run id, agent or account)


class BudgetGuard:
    """Checks and settles the budgets of calls against one ledger. Thread-safe."""

    def __init__(
        self, budgets: Budgets, ledger: SpendLedger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.budgets = budgets
        self.ledger = ledger
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: dict[Scope, Spend] = {}

    def _scopes(self, ctx: CallContext) -> list[tuple[Scope, Callable[[], Spend]]]:
        """Each scope of a call that has a limit, with how to read its settled spend."""
        midnight = self.clock().astimezone(UTC).replace(hour=0, minute=0, second=0,
                                                        microsecond=0)
        ledger = self.ledger
        scopes: list[tuple[Scope, Callable[[], Spend]]] = []
        if ctx.run_id is not None:
            run_id = ctx.run_id
            scopes.append((("run", run_id), lambda: ledger.spent(run_id=run_id)))
        if ctx.agent:
            scopes.append((("agent_day", ctx.agent),
                           lambda: ledger.spent(agent=ctx.agent, since=midnight)))
        scopes.append((("account_day", ctx.account),
                       lambda: ledger.spent(account=ctx.account, since=midnight)))
        return [(scope, read) for scope, read in scopes if self._has_limits(scope[0])]

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
        held: list[Scope] = []
        reservation = Reservation({})
        with self._lock:
            for key, read in self._scopes(ctx):
                pending = self._pending.get(key, Spend())
                done = read()
                reservation.before[key[0]] = done
                self._check(key[0], Spend(done.tokens + pending.tokens,
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
        from the spend `reserve` read, so settling costs one write and no read)."""
        self.ledger.record(UsageEntry(
            at=self.clock(), account=ctx.account, agent=ctx.agent, run_id=ctx.run_id,
            provider=usage.provider, model=usage.model, input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens, cost=usage.cost, latency_ms=usage.latency_ms,
        ))
        self._check("call", Spend(), usage.tokens, usage.cost, "after")
        for scope, spent in reservation.before.items():
            self._check(scope, spent, usage.tokens, usage.cost, "after")

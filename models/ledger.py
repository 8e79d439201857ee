"""Where spend is kept: the `SpendLedger` interface and its in-memory implementation.

A ledger stores one `UsageEntry` per settled model call and answers two kinds of questions:
how much a budget scope has spent, for the budgets, and the totals by day, model and agent, for
`agentfactory usage`, `GET /api/v1/usage` and `/metrics`. `models.ledger_sql.SqlLedger` keeps the
same entries in a database (the registry's, or a local SQLite file for the CLI); `MemoryLedger`
keeps them in a list, for tests and one-off scripts.

The budgets read running totals, not sums: each entry counts in the totals of its scopes
(`total_keys`: its run over the run's life, its agent and its account in the entry's UTC day),
updated together with the entry. `record` returns those totals as they are once the entry is in
(read in the same transaction, so they include every writer's entries), `spent_in` reads them.

Invariants: entries are append-only; token counts and costs are non-negative; a running total
equals the sum of its scope's entries; `spent` sums exactly the entries of its scope; every
timestamp is timezone-aware UTC.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import NamedTuple, Protocol

ALL_TIME = "all"  # the period of a run's total


@dataclass(frozen=True, slots=True)
class UsageEntry:
    at: datetime
    account: str
    agent: str
    run_id: str | None
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float
    latency_ms: float


@dataclass(frozen=True, slots=True)
class Spend:
    tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Totals of one (day, model, agent) group."""

    day: date
    model: str
    agent: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost: float


@dataclass(frozen=True, slots=True)
class UsageTotal:
    """Totals of one (model, agent) pair over all time, for the Prometheus counters."""

    model: str
    agent: str
    input_tokens: int
    output_tokens: int
    cost: float


class TotalKey(NamedTuple):
    """One running total: (`run`, run id, `all`), (`agent_day` | `account_day`, name, ISO day)."""

    scope: str
    name: str
    period: str


def total_keys(account: str, agent: str, run_id: str | None, day: date) -> list[TotalKey]:
    """The totals a call counts in (an agent named "" has none), sorted: writers that update
    them in one order cannot deadlock."""
    keys = [TotalKey("account_day", account, day.isoformat())]
    if agent:
        keys.append(TotalKey("agent_day", agent, day.isoformat()))
    if run_id is not None:
        keys.append(TotalKey("run", run_id, ALL_TIME))
    return sorted(keys)


def entry_keys(entry: UsageEntry) -> list[TotalKey]:
    return total_keys(entry.account, entry.agent, entry.run_id, entry.at.astimezone(UTC).date())


class SpendLedger(Protocol):
    def record(self, entry: UsageEntry) -> dict[TotalKey, Spend]:
        """Append `entry`; the totals it counts in, this entry included."""
        ...

    def spent_in(self, keys: Sequence[TotalKey]) -> dict[TotalKey, Spend]:
        """The running totals of `keys` (an empty `Spend` for one with nothing yet)."""
        ...

    def spent(
        self, *, run_id: str | None = None, agent: str | None = None,
        account: str | None = None, since: datetime | None = None,
    ) -> Spend: ...

    def usage(
        self, account: str, since: datetime, until: datetime | None = None
    ) -> Sequence[UsageRow]: ...

    def totals(self) -> Sequence[UsageTotal]: ...


class MemoryLedger:
    """A `SpendLedger` in a list. Thread-safe."""

    def __init__(self) -> None:
        self.entries: list[UsageEntry] = []
        self._totals: dict[TotalKey, Spend] = {}
        self._lock = threading.Lock()

    def record(self, entry: UsageEntry) -> dict[TotalKey, Spend]:
        tokens = entry.input_tokens + entry.output_tokens
        after = {}
        with self._lock:
            self.entries.append(entry)
            for key in entry_keys(entry):
                total = self._totals.get(key, Spend())
                after[key] = self._totals[key] = Spend(total.tokens + tokens,
                                                       total.cost + entry.cost)
        return after

    def spent_in(self, keys: Sequence[TotalKey]) -> dict[TotalKey, Spend]:
        with self._lock:
            return {key: self._totals.get(key, Spend()) for key in keys}

    def spent(
        self, *, run_id: str | None = None, agent: str | None = None,
        account: str | None = None, since: datetime | None = None,
    ) -> Spend:
        with self._lock:
            chosen = [
                e for e in self.entries
                if (run_id is None or e.run_id == run_id)
                and (agent is None or e.agent == agent)
                and (account is None or e.account == account)
                and (since is None or e.at >= since)
            ]
        return Spend(sum(e.input_tokens + e.output_tokens for e in chosen),
                     sum(e.cost for e in chosen))

    def usage(
        self, account: str, since: datetime, until: datetime | None = None
    ) -> list[UsageRow]:
        groups: dict[tuple[date, str, str], list[UsageEntry]] = {}
        with self._lock:
            for e in self.entries:
                if e.account == account and e.at >= since and (until is None or e.at < until):
                    groups.setdefault((e.at.date(), e.model, e.agent), []).append(e)
        return [
            UsageRow(day, model, agent, len(es), sum(e.input_tokens for e in es),
                     sum(e.output_tokens for e in es), sum(e.cost for e in es))
            for (day, model, agent), es in sorted(groups.items())
        ]

    def totals(self) -> list[UsageTotal]:
        groups: dict[tuple[str, str], list[UsageEntry]] = {}
        with self._lock:
            for e in self.entries:
                groups.setdefault((e.model, e.agent), []).append(e)
        return [
            UsageTotal(model, agent, sum(e.input_tokens for e in es),
                       sum(e.output_tokens for e in es), sum(e.cost for e in es))
            for (model, agent), es in sorted(groups.items())
        ]

"""Where spend is kept: the `SpendLedger` interface and its in-memory implementation.

A ledger stores one `UsageEntry` per settled model call and answers two kinds of questions:
how much a scope (a run; an agent or an account since a moment) has spent, for the budgets, and
the totals by day, model and agent, for `agentfactory usage`, `GET /api/v1/usage` and `/metrics`.
`models.ledger_sql.SqlLedger` keeps the same entries in a database (the registry's, or a local
SQLite file for the CLI); `MemoryLedger` keeps them in a list, for tests and one-off scripts.

Invariants: entries are append-only; token counts and costs are non-negative; `spent` sums
exactly the entries of its scope; every timestamp is timezone-aware UTC.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol


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


class SpendLedger(Protocol):
    def record(self, entry: UsageEntry) -> None: ...

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
        self._lock = threading.Lock()

    def record(self, entry: UsageEntry) -> None:
        with self._lock:
            self.entries.append(entry)

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

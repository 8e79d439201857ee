"""The spend report shown by `agentfactory usage` and `GET /api/v1/usage`.

One account's model calls over the last `days` days (today included, UTC), grouped by day,
model and agent, with totals. Both edges print the same record, so a script reading one reads
the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from models.ledger import SpendLedger, UsageRow

MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class UsageReport:
    account: str
    since: datetime
    rows: list[UsageRow]

    @property
    def totals(self) -> dict[str, Any]:
        return {
            "calls": sum(r.calls for r in self.rows),
            "input_tokens": sum(r.input_tokens for r in self.rows),
            "output_tokens": sum(r.output_tokens for r in self.rows),
            "cost": round(sum(r.cost for r in self.rows), 9),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "since": self.since.isoformat(),
            "rows": [{**asdict(r), "day": r.day.isoformat(), "cost": round(r.cost, 9)}
                     for r in self.rows],
            "totals": self.totals,
        }


def usage_report(
    ledger: SpendLedger, account: str, days: int,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> UsageReport:
    """`account`'s spend over the last `days` days (1 = today), `1 <= days <= MAX_DAYS`."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}, not {days}")
    midnight = clock().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = midnight - timedelta(days=days - 1)
    return UsageReport(account, since, list(ledger.usage(account, since)))

"""The spend tables, on the registry's metadata: `model_usage` and `spend_total`.

`model_usage` holds one row per settled model call; `spend_total` the running total of each budget
scope (a run over its life, an agent or an account in one UTC day), kept by the ledger in the same
transaction as each `model_usage` insert, so that a budget check is one point read.

The registry's Alembic migrations `0007_model_usage` and `0011_spend_total` create them in the
registry database (server-side accounting); `models.ledger_sql.SqlLedger.local` creates them in a
SQLite file for a user's own machine. The database enforces that token counts, cost and latency are
non-negative. `day` is the UTC date of `at`, stored so the per-day reports group on an indexed
column.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Index
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UsageRecord(SQLModel, table=True):
    """What one model call spent, and for whom."""

    __tablename__ = "model_usage"
    __table_args__ = (
        CheckConstraint(
            "input_tokens >= 0 AND output_tokens >= 0 AND cost >= 0 AND latency_ms >= 0",
            name="model_usage_figures",
        ),
        Index("ix_model_usage_account_day", "account", "day"),
        Index("ix_model_usage_agent_day", "agent", "day"),
        Index("ix_model_usage_run", "run_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    day: date
    account: str = Field(max_length=200)
    agent: str = Field(max_length=200)
    run_id: str | None = Field(default=None, max_length=64)
    provider: str = Field(max_length=100)
    model: str = Field(max_length=200)
    input_tokens: int
    output_tokens: int
    cost: float
    latency_ms: float


class SpendTotal(SQLModel, table=True):
    """What one budget scope has spent: the sum of its `model_usage` rows.

    `scope` is `run`, `agent_day` or `account_day`; `name` the run id, agent or account; `period`
    the UTC day (`2026-12-01`) of a day scope, `all` for a run.
    """

    __tablename__ = "spend_total"
    __table_args__ = (
        CheckConstraint("tokens >= 0 AND cost >= 0", name="spend_total_figures"),
    )

    scope: str = Field(primary_key=True, max_length=16)
    name: str = Field(primary_key=True, max_length=200)
    period: str = Field(primary_key=True, max_length=10)
    tokens: int = Field(sa_type=BigInteger)
    cost: float

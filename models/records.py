"""The `model_usage` table: one row per settled model call, on the registry's metadata.

The registry's Alembic migration `0006_model_usage` creates it in the registry database
(server-side accounting); `models.ledger_sql.SqlLedger.local` creates it alone in a SQLite file
for a user's own machine. The database enforces that token counts, cost and latency are
non-negative. `day` is the UTC date of `at`, stored so the per-day budgets and reports group on
an indexed column.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import CheckConstraint, Index
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

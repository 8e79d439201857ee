"""Model usage: what each model call spent, for budgets and accounting.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

`model_usage` holds one row per settled model call (model `models.records.UsageRecord`, written
by `models.ledger_sql.SqlLedger`): who spent (account, agent, run), on which model, the tokens,
the cost from the deployment's price table and the latency. Token counts, cost and latency are
never negative. The per-day budgets and `GET /api/v1/usage` group on `day` (UTC).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_usage",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "input_tokens >= 0 AND output_tokens >= 0 AND cost >= 0 AND latency_ms >= 0",
            name="model_usage_figures",
        ),
    )
    op.create_index("ix_model_usage_account_day", "model_usage", ["account", "day"])
    op.create_index("ix_model_usage_agent_day", "model_usage", ["agent", "day"])
    op.create_index("ix_model_usage_run", "model_usage", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_model_usage_run", table_name="model_usage")
    op.drop_index("ix_model_usage_agent_day", table_name="model_usage")
    op.drop_index("ix_model_usage_account_day", table_name="model_usage")
    op.drop_table("model_usage")

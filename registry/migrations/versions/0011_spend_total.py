"""Running totals of model spend, so that a budget check is one point read.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

`spend_total` (model `models.records.SpendTotal`) holds what each budget scope has spent: a run
over its life (`period` = `all`), an agent or an account in one UTC day (`period` = the ISO day).
`models.ledger_sql.SqlLedger` adds each `model_usage` row to its totals in the same transaction as
the insert. The upgrade fills the table from the `model_usage` rows already there (the same sums
`SqlLedger.local` computes for a user's older ledger file).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spend_total",
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "name", "period"),
        sa.CheckConstraint("tokens >= 0 AND cost >= 0", name="spend_total_figures"),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    day = "day" if sqlite else "to_char(day, 'YYYY-MM-DD')"
    tokens = "SUM(input_tokens + output_tokens)"
    for scope, name, period, where, groups in (
        ("account_day", "account", day, "TRUE", "account, day"),
        ("agent_day", "agent", day, "agent <> ''", "agent, day"),
        ("run", "run_id", "'all'", "run_id IS NOT NULL", "run_id"),
    ):
        op.execute(
            "INSERT INTO spend_total (scope, name, period, tokens, cost) "
            f"SELECT '{scope}', {name}, {period}, {tokens}, SUM(cost) FROM model_usage "
            f"WHERE {where} GROUP BY {groups}"
        )


def downgrade() -> None:
    op.drop_table("spend_total")

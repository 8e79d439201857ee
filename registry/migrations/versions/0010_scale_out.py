"""Several API processes on one database: package change signals and shared rate budgets.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

`package_change` (model `registry.models.PackageChange`) and its triggers tell every API process
which package a committed write touched, so none serves a cached answer older than the write
(`marketplace.server.invalidation`). The triggers sit on the three tables the cached answers are
made of (`package`, `release`, `review`), so every write path is covered, including ones written
later, and the signal is part of the write's own transaction:

- SQLite: each trigger sets the package's row to the next `seq` (max + 1: SQLite has one writer
  at a time, so seqs follow commit order). Readers ask for the rows past the last seq they saw.
- PostgreSQL: each trigger sends the package's normalized name on the channel
  `agentfactory_package` (`pg_notify`, delivered only if the transaction commits, in commit
  order). It does not write `package_change`: two transactions would then lock the package row
  and the change row in opposite orders. The table stays empty there.

`rate_bucket` (model `registry.models.RateBucket`) holds the token buckets of the rate limits,
so every process spends from one budget per account (`marketplace.server.ratelimit`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = ("package", "release", "review")
PG_FUNCTION = "agentfactory_package_changed"
CHANNEL = "agentfactory_package"

_PG_BODY = f"""
CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text;
BEGIN
    IF TG_TABLE_NAME = 'package' THEN
        IF TG_OP = 'DELETE' THEN changed := OLD.normalized_name;
        ELSE changed := NEW.normalized_name; END IF;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT normalized_name INTO changed FROM package WHERE id = OLD.package_id;
    ELSE
        SELECT normalized_name INTO changed FROM package WHERE id = NEW.package_id;
    END IF;
    IF changed IS NOT NULL THEN
        PERFORM pg_notify('{CHANNEL}', changed);
    END IF;
    RETURN NULL;
END
$$
"""

# SQLite: the next seq, and the normalized name each table's row points at.
_NEXT = "(SELECT coalesce(max(seq), 0) + 1 FROM package_change)"
_SQLITE_NAME = {
    "package": "SELECT {row}.normalized_name, {next} WHERE true",
    "release": "SELECT normalized_name, {next} FROM package WHERE id = {row}.package_id",
    "review": "SELECT normalized_name, {next} FROM package WHERE id = {row}.package_id",
}


def _sqlite_triggers() -> list[tuple[str, str]]:
    triggers = []
    for table in WATCHED:
        for op_name, row in (("INSERT", "new"), ("UPDATE", "new"), ("DELETE", "old")):
            select = _SQLITE_NAME[table].format(row=row, next=_NEXT)
            body = (
                f"INSERT INTO package_change (name, seq) {select} "
                "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq;"
            )
            name = f"package_change_{table}_{op_name.lower()}"
            triggers.append(
                (name, f"CREATE TRIGGER {name} AFTER {op_name} ON {table} BEGIN {body} END")
            )
    return triggers


def upgrade() -> None:
    op.create_table(
        "package_change",
        sa.Column("name", sa.String(130), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_package_change_seq", "package_change", ["seq"])
    op.create_table(
        "rate_bucket",
        sa.Column("action", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("stamp", sa.Float(), nullable=False),
        sa.CheckConstraint("tokens >= 0", name="rate_bucket_tokens_nonneg"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(_PG_BODY)
        for table in WATCHED:
            bind.exec_driver_sql(
                f"CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()"
            )
    elif bind.dialect.name == "sqlite":
        for _name, sql in _sqlite_triggers():
            bind.exec_driver_sql(sql)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in WATCHED:
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_changed ON {table}")
        bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()")
    elif bind.dialect.name == "sqlite":
        for name, _sql in _sqlite_triggers():
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("rate_bucket")
    op.drop_table("package_change")

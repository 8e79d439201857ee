"""An append-only audit trail, and the correlation id of each run.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

`audit_event` holds one row per registry write, run transition and workflow step (model
`registry.models.AuditEvent`, written by `registry.audit`). The database keeps it append-only
whatever the code does: a trigger refuses every UPDATE and DELETE of a row (SQLite
`RAISE(ABORT)`; PostgreSQL a PL/pgSQL function that raises). TRUNCATE, a table owner's
statement no application path issues, stays possible: an operator can still empty a test
database. Removing the table (downgrade) removes its triggers. `run.correlation_id` records the
request that submitted each run, so its worker, its steps and its events carry the same id.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STAMP = sa.DateTime(timezone=True)
_OUTCOME = "outcome = 'ok' OR outcome LIKE 'refused:%' OR outcome LIKE 'failed:%'"
MESSAGE = "audit_event is append-only"

_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER audit_event_no_{verb.lower()} BEFORE {verb} ON audit_event
        BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"""
    for verb in ("UPDATE", "DELETE")
]
_PG_TRIGGERS = [
    f"""CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$""",
    """CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event
        FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()""",
]


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", _STAMP, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.Integer()),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("object_type", sa.String(16), nullable=False),
        sa.Column("object_id", sa.String(200), nullable=False),
        sa.Column("owner_id", sa.Integer()),
        sa.Column("outcome", sa.String(80), nullable=False),
        sa.Column("correlation_id", sa.String(128)),
        sa.Column("detail_json", sa.Text(), nullable=False),
        sa.CheckConstraint(_OUTCOME, name="audit_event_outcome"),
        sa.CheckConstraint("length(detail_json) <= 4096", name="audit_event_detail_len"),
    )
    for column in ("at", "actor_id", "action", "object_id", "owner_id", "correlation_id"):
        op.create_index(f"ix_audit_event_{column}", "audit_event", [column])
    statements = _PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for statement in statements:
        op.execute(statement)
    with op.batch_alter_table("run") as run:
        run.add_column(sa.Column("correlation_id", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("run") as run:
        run.drop_column("correlation_id")
    op.drop_table("audit_event")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_event_append_only()")

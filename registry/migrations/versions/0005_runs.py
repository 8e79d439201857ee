"""Runs: agents as a service.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

`run` holds one row per task submitted to `POST /api/v1/runs` (its agent, pinned version,
input, state, result or typed error, timings, usage, lease and idempotency key); `run_event`
numbers each run's progress from 1. The tables' models are `runs.models` (on the registry's
metadata). Tokens that could publish get the new `run` scope: an account that can publish an
agent may run agents too, and new registrations get it anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STAMP = sa.DateTime(timezone=True)
_STATUSES = "'queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled'"


def upgrade() -> None:
    op.create_table(
        "run",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("publisher_id", sa.Integer(), sa.ForeignKey("publisher.id"), nullable=False),
        sa.Column("agent", sa.String(300), nullable=False),
        sa.Column("agent_name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64)),
        sa.Column("input_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result_json", sa.Text()),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text()),
        sa.Column("error_detail_json", sa.Text()),
        sa.Column("created_at", _STAMP, nullable=False),
        sa.Column("started_at", _STAMP),
        sa.Column("finished_at", _STAMP),
        sa.Column("duration_ms", sa.Float()),
        sa.Column("fuel_used", sa.Integer()),
        sa.Column("memory_peak_bytes", sa.Integer()),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("idempotency_key", sa.String(128)),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_expires_at", _STAMP),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name="run_status"),
        sa.CheckConstraint("attempt >= 0", name="run_attempt"),
        sa.CheckConstraint("timeout_s > 0", name="run_timeout"),
        sa.UniqueConstraint("publisher_id", "idempotency_key", name="uq_run_idempotency"),
    )
    op.create_index("ix_run_publisher_created", "run", ["publisher_id", "created_at"])
    op.create_index("ix_run_publisher_status", "run", ["publisher_id", "status"])
    op.create_index("ix_run_status_created", "run", ["status", "created_at"])
    op.create_index("ix_run_lease_expires_at", "run", ["lease_expires_at"])
    op.create_table(
        "run_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.Column("at", _STAMP, nullable=False),
        sa.UniqueConstraint("run_id", "seq", name="uq_run_event_seq"),
        sa.CheckConstraint("seq >= 1", name="run_event_seq"),
    )
    api_token = sa.table("api_token", sa.column("scopes", sa.String))
    # Scopes are stored sorted and space-separated; "run" sorts after publish and review.
    op.execute(
        api_token.update()
        .where(api_token.c.scopes.like("%publish%"), ~api_token.c.scopes.like("%run%"))
        .values(scopes=api_token.c.scopes + " run")
    )


def downgrade() -> None:
    op.drop_table("run_event")
    op.drop_table("run")
    api_token = sa.table("api_token", sa.column("scopes", sa.String))
    scopes = api_token.c.scopes
    op.execute(
        api_token.update()
        .where(scopes.like("% run"))
        .values(scopes=sa.func.substr(scopes, 1, sa.func.length(scopes) - 4))
    )

"""SQLModel tables of the run service, on the registry's metadata (its Alembic migrations create
them: `registry/migrations/versions/0005_runs.py`).

The database enforces what it can: a run's status is one of the six states, an account uses an
idempotency key once (`(publisher_id, idempotency_key)` is unique; NULL keys never clash),
attempts and usage are non-negative, a run's events are numbered 1, 2, 3... without a gap or a
twin (`(run_id, seq)` is unique). JSON documents (input, result, error detail, event data) are
stored as text, serialized by `runs.store` only. Rows never leave the store: it returns
`runs.schemas` records.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from registry.models import utcnow

STATUSES = ("queued", "running", "succeeded", "failed", "timed_out", "cancelled")
_STATUS_SQL = ", ".join(f"'{s}'" for s in STATUSES)


class Run(SQLModel, table=True):
    """One task for one agent, from submission to its final state."""

    __tablename__ = "run"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUS_SQL})", name="run_status"),
        CheckConstraint("attempt >= 0", name="run_attempt"),
        CheckConstraint("timeout_s > 0", name="run_timeout"),
        UniqueConstraint("publisher_id", "idempotency_key", name="uq_run_idempotency"),
        Index("ix_run_publisher_created", "publisher_id", "created_at"),
        Index("ix_run_publisher_status", "publisher_id", "status"),
        Index("ix_run_status_created", "status", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=32)
    publisher_id: int = Field(foreign_key="publisher.id")
    agent: str = Field(max_length=300)  # as requested: a name, maybe with a specifier
    agent_name: str = Field(max_length=200)  # the template it resolved to
    version: str | None = Field(default=None, max_length=64)  # the exact version that ran
    input_json: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="queued", max_length=16)
    result_json: str | None = Field(default=None, sa_column=Column(Text))
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, sa_column=Column(Text))
    error_detail_json: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    fuel_used: int | None = None
    memory_peak_bytes: int | None = None
    timeout_s: float
    idempotency_key: str | None = Field(default=None, max_length=128)
    attempt: int = 0
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_expires_at: datetime | None = Field(default=None, index=True)
    cancel_requested: bool = False
    # The request that submitted it (`core.context`): its worker, steps and audit events carry it.
    correlation_id: str | None = Field(default=None, max_length=128)


class RunEvent(SQLModel, table=True):
    """One step of a run's progress, numbered from 1 within its run."""

    __tablename__ = "run_event"
    __table_args__ = (
        UniqueConstraint("run_id", "seq", name="uq_run_event_seq"),
        CheckConstraint("seq >= 1", name="run_event_seq"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", max_length=32)
    seq: int
    kind: str = Field(max_length=32)
    data_json: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(default_factory=utcnow)

"""`SqlLedger`: the `SpendLedger` on the `model_usage` table of a SQLAlchemy database.

On the server it shares the registry's engine (the table is created by the registry's
migrations); on a user's machine `SqlLedger.local(path)` opens a SQLite file of its own and
creates the table there. Sums are computed by the database, so a budget check is one indexed
query whatever the history's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, func, select
from sqlmodel import Session, SQLModel, col

from models.ledger import Spend, UsageEntry, UsageRow, UsageTotal
from models.records import UsageRecord

TABLE: Table = UsageRecord.__table__  # type: ignore[attr-defined]  # set by SQLModel's metaclass


class SqlLedger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def local(cls, path: Path) -> SqlLedger:
        """A ledger in the SQLite file at `path` (created with its table when missing)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL with NORMAL sync: a commit is not an fsync, and readers never wait on it.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

        SQLModel.metadata.create_all(engine, tables=[TABLE])
        return cls(engine)

    def record(self, entry: UsageEntry) -> None:
        at = entry.at.astimezone(UTC)
        row = UsageRecord(
            at=at, day=at.date(), account=entry.account, agent=entry.agent,
            run_id=entry.run_id, provider=entry.provider, model=entry.model,
            input_tokens=entry.input_tokens, output_tokens=entry.output_tokens,
            cost=entry.cost, latency_ms=entry.latency_ms,
        )
        with Session(self.engine) as session:
            session.add(row)
            session.commit()

    def spent(
        self, *, run_id: str | None = None, agent: str | None = None,
        account: str | None = None, since: datetime | None = None,
    ) -> Spend:
        query: Any = select(
            func.coalesce(func.sum(col(UsageRecord.input_tokens) + col(UsageRecord.output_tokens)),
                          0),
            func.coalesce(func.sum(col(UsageRecord.cost)), 0.0),
        )
        if run_id is not None:
            query = query.where(col(UsageRecord.run_id) == run_id)
        if agent is not None:
            query = query.where(col(UsageRecord.agent) == agent)
        if account is not None:
            query = query.where(col(UsageRecord.account) == account)
        if since is not None:
            since = since.astimezone(UTC)
            query = query.where(col(UsageRecord.day) >= since.date(),
                                col(UsageRecord.at) >= since)
        with self.engine.connect() as connection:
            tokens, cost = connection.execute(query).one()
        return Spend(int(tokens), float(cost))

    def usage(
        self, account: str, since: datetime, until: datetime | None = None
    ) -> list[UsageRow]:
        r = TABLE.c
        query: Any = (
            select(r.day, r.model, r.agent, func.count(), func.sum(r.input_tokens),
                   func.sum(r.output_tokens), func.sum(r.cost))
            .where(r.account == account,
                   r.at >= since.astimezone(UTC))
            .group_by(r.day, r.model, r.agent)
            .order_by(r.day, r.model, r.agent)
        )
        if until is not None:
            query = query.where(r.at < until.astimezone(UTC))
        with Session(self.engine) as session:
            rows = session.execute(query).all()
        return [UsageRow(day, model, agent, int(n), int(i), int(o), float(c))
                for day, model, agent, n, i, o, c in rows]

    def totals(self) -> Sequence[UsageTotal]:
        r = TABLE.c
        query: Any = (
            select(r.model, r.agent, func.sum(r.input_tokens), func.sum(r.output_tokens),
                   func.sum(r.cost))
            .group_by(r.model, r.agent)
            .order_by(r.model, r.agent)
        )
        with Session(self.engine) as session:
            rows = session.execute(query).all()
        return [UsageTotal(model, agent, int(i), int(o), float(c))
                for model, agent, i, o, c in rows]


"""`SqlLedger`: the `SpendLedger` on the `model_usage` and `spend_total` tables of a database.

On the server it shares the registry's engine (the tables are created by the registry's
migrations); on a user's machine `SqlLedger.local(path)` opens a SQLite file of its own and
creates the tables there. SQLite and PostgreSQL are supported.

The budget path: `spent_in` reads a call's running totals by primary key in one query (before a
call, when the guard does not know them lately); `record` inserts the `model_usage` row and adds
it to its totals (`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`) in one transaction. What
`record` returns is therefore authoritative across processes: the database serializes the
updates of a total (a row lock on PostgreSQL, the write lock on SQLite) and each transaction sees
the total with every committed entry and its own. Totals are updated in one order (`total_keys`
sorts them), so two writers cannot deadlock. The reports (`usage`, `totals`, `spent`) sum
`model_usage` itself.

`record` runs on every model call, so its two statements are `core.sql.Prepared`: Core statements
compiled once per dialect and sent on the driver's cursor inside SQLAlchemy's transaction (which
keeps the engine's own BEGIN, pool and rollback on error). That skips SQLAlchemy's per-execution
work, which cost more than the database itself here (see `benchmarks/bench_models.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    Table,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel, col

from core.sql import Prepared
from models.ledger import ALL_TIME, Spend, TotalKey, UsageEntry, UsageRow, UsageTotal, entry_keys
from models.records import SpendTotal, UsageRecord

TABLE: Table = UsageRecord.__table__  # type: ignore[attr-defined]  # set by SQLModel's metaclass
TOTALS: Table = SpendTotal.__table__  # type: ignore[attr-defined]

_t = TOTALS.c
_USAGE_COLUMNS = ("at", "day", "account", "agent", "run_id", "provider", "model", "input_tokens",
                  "output_tokens", "cost", "latency_ms")


def _read_totals(count: int) -> Any:
    """`SELECT` `count` totals by primary key (bound as s0, n0, p0, s1, ...)."""
    return select(_t.scope, _t.name, _t.period, _t.tokens, _t.cost).where(or_(*(
        and_(_t.scope == bindparam(f"s{i}"), _t.name == bindparam(f"n{i}"),
             _t.period == bindparam(f"p{i}"))
        for i in range(count)
    )))


_READ = {count: _read_totals(count) for count in (1, 2, 3)}  # a call counts in 1 to 3 totals


def _add_to_totals(dialect: str, count: int) -> Any:
    """`INSERT` `count` totals or add to them, `RETURNING` them (bound as s0, n0, p0, s1, ...;
    `tokens` and `cost` once)."""
    upsert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(TOTALS).values([
        {"scope": bindparam(f"s{i}"), "name": bindparam(f"n{i}"), "period": bindparam(f"p{i}"),
         "tokens": bindparam("tokens"), "cost": bindparam("cost")}
        for i in range(count)
    ])
    return upsert.on_conflict_do_update(
        index_elements=[_t.scope, _t.name, _t.period],
        set_={"tokens": _t.tokens + upsert.excluded.tokens, "cost": _t.cost + upsert.excluded.cost},
    ).returning(_t.scope, _t.name, _t.period, _t.tokens, _t.cost)


@dataclass(frozen=True, slots=True)
class _Statements:
    """`record`'s statements for one dialect."""

    insert_usage: Prepared
    add_to_totals: dict[int, Prepared]  # by the number of totals an entry counts in (1 to 3)

    @classmethod
    def of(cls, dialect: Dialect) -> _Statements:
        insert_usage = insert(TABLE).values({name: bindparam(name) for name in _USAGE_COLUMNS})
        return cls(Prepared.compile(insert_usage, dialect), {
            count: Prepared.compile(_add_to_totals(dialect.name, count), dialect)
            for count in (1, 2, 3)
        })


def recompute_totals(connection: Connection) -> None:
    """Set every running total to the sum of its entries (in one transaction of the caller's).
    Idempotent, and correct whatever else writes meanwhile: each statement reads the entries and
    writes their totals at once."""
    r = TABLE.c
    period = r.day if connection.dialect.name == "sqlite" else func.to_char(r.day, "YYYY-MM-DD")
    tokens = func.sum(r.input_tokens + r.output_tokens)
    connection.execute(TOTALS.delete())
    for scope, name, when, where, groups in (
        ("account_day", r.account, period, None, (r.account, r.day)),
        ("agent_day", r.agent, period, r.agent != "", (r.agent, r.day)),
        ("run", r.run_id, literal(ALL_TIME), r.run_id.is_not(None), (r.run_id,)),
    ):
        query = select(literal(scope), name, when, tokens, func.sum(r.cost)).group_by(*groups)
        if where is not None:
            query = query.where(where)
        connection.execute(TOTALS.insert().from_select(
            ["scope", "name", "period", "tokens", "cost"], query))


class SqlLedger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._statements = _Statements.of(engine.dialect)

    @classmethod
    def local(cls, path: Path) -> SqlLedger:
        """A ledger in the SQLite file at `path` (created with its tables when missing; the
        totals of a file from before `spend_total` are summed from its entries)."""
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

        with engine.connect() as connection:
            had_totals = inspect(connection).has_table(TOTALS.name)
        SQLModel.metadata.create_all(engine, tables=[TABLE, TOTALS])
        if not had_totals:
            with engine.begin() as connection:
                recompute_totals(connection)
        return cls(engine)

    def record(self, entry: UsageEntry) -> dict[TotalKey, Spend]:
        at = entry.at.astimezone(UTC)
        keys = entry_keys(entry)
        totals: dict[str, Any] = {"tokens": entry.input_tokens + entry.output_tokens,
                                  "cost": entry.cost}
        for i, (scope, name, period) in enumerate(keys):
            totals[f"s{i}"], totals[f"n{i}"], totals[f"p{i}"] = scope, name, period
        # The pool's DB-API connection, without SQLAlchemy's Connection and transaction objects
        # around it: the statements are already compiled, and those wrappers cost more than the
        # two statements. The driver opens the transaction; commit or roll back is ours.
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                self._statements.insert_usage.execute(cursor, {
                    "at": at, "day": at.date(), "account": entry.account, "agent": entry.agent,
                    "run_id": entry.run_id, "provider": entry.provider, "model": entry.model,
                    "input_tokens": entry.input_tokens, "output_tokens": entry.output_tokens,
                    "cost": entry.cost, "latency_ms": entry.latency_ms,
                })
                self._statements.add_to_totals[len(keys)].execute(cursor, totals)
                rows = cursor.fetchall()
            finally:
                cursor.close()
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()  # back to the pool
        return {TotalKey(scope, name, period): Spend(int(t), float(c))
                for scope, name, period, t, c in rows}

    def spent_in(self, keys: Sequence[TotalKey]) -> dict[TotalKey, Spend]:
        found = dict.fromkeys(keys, Spend())
        if not keys:
            return found
        read = _READ[len(keys)] if len(keys) in _READ else _read_totals(len(keys))
        params = {}
        for i, (scope, name, period) in enumerate(keys):
            params[f"s{i}"], params[f"n{i}"], params[f"p{i}"] = scope, name, period
        with self.engine.connect() as connection:
            rows = connection.execute(read, params).all()
        for scope, name, period, tokens, cost in rows:
            found[TotalKey(scope, name, period)] = Spend(int(tokens), float(cost))
        return found

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
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
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
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [UsageTotal(model, agent, int(i), int(o), float(c))
                for model, agent, i, o, c in rows]

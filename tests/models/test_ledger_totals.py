"""Running totals of spend: equal to the sums of the entries, shared by every ledger on one
database, kept up from old ledger files and by the registry's migration, and what budgets that
several processes share can and cannot let through."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, insert
from sqlmodel import SQLModel

from models.budget import BudgetGuard, Estimate
from models.config import parse_config
from models.errors import BudgetExceeded
from models.ledger import MemoryLedger, Spend, SpendLedger, TotalKey, UsageEntry, total_keys
from models.ledger_sql import TABLE, SqlLedger
from models.types import CallContext, Usage
from registry.db import alembic_config, init_db, make_engine
from tests.registry.databases import BACKENDS, pg_server

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
DAY = NOW.date().isoformat()


def entry(at: datetime = NOW, account: str = "acme", agent: str = "writer",
          run_id: str | None = "r1", tokens: int = 10, cost: float = 0.25) -> UsageEntry:
    return UsageEntry(at, account, agent, run_id, "stub", "m1", tokens - 1, 1, cost, 2.0)


HISTORY = [
    entry(), entry(tokens=5, cost=0.5), entry(agent="", run_id=None, tokens=7),
    entry(account="other", agent="reader", run_id="r2", tokens=3),
    entry(at=NOW - timedelta(days=1), tokens=100, cost=4.0),
    entry(at=NOW.replace(hour=23, minute=59), run_id="r2", tokens=1),
]
EXPECTED = {
    TotalKey("account_day", "acme", DAY): Spend(10 + 5 + 7 + 1, 0.25 * 3 + 0.5),
    TotalKey("agent_day", "writer", DAY): Spend(10 + 5 + 1, 0.25 * 2 + 0.5),
    TotalKey("run", "r1", "all"): Spend(10 + 5 + 100, 0.25 + 0.5 + 4.0),
    TotalKey("run", "r2", "all"): Spend(3 + 1, 0.5),
    TotalKey("account_day", "acme", "2026-11-30"): Spend(100, 4.0),
    TotalKey("agent_day", "", DAY): Spend(),  # an agent with no name has no total
    TotalKey("account_day", "nobody", DAY): Spend(),
}


def migrated(backend: str, tmp_path: Path, revision: str = "head") -> Iterator[Engine]:
    """A registry database at `revision`, on `backend`."""
    if backend == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'registry.db'}", None
    else:
        server = pg_server()
        url = server.create()
        drop = server.drop
    engine = make_engine(url)
    if revision == "head":
        init_db(engine)
    else:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), revision)
    yield engine
    engine.dispose()
    if drop is not None:
        drop(url)


@pytest.fixture(params=["memory", "local", *BACKENDS])
def any_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SpendLedger]:
    if request.param == "memory":
        yield MemoryLedger()
    elif request.param == "local":
        ledger = SqlLedger.local(tmp_path / "usage.db")
        yield ledger
        ledger.engine.dispose()
    else:
        yield from (SqlLedger(engine) for engine in migrated(request.param, tmp_path))


def assert_totals(ledger: SpendLedger) -> None:
    found = ledger.spent_in(list(EXPECTED))
    assert {k: s.tokens for k, s in found.items()} == {k: s.tokens for k, s in EXPECTED.items()}
    for key, spend in EXPECTED.items():
        assert found[key].cost == pytest.approx(spend.cost)


def test_running_totals_are_the_sums_of_the_entries(any_ledger: SpendLedger) -> None:
    for item in HISTORY:
        after = any_ledger.record(item)
        day = item.at.date()
        assert list(after) == total_keys(item.account, item.agent, item.run_id, day)
    assert_totals(any_ledger)
    # The sums the reports use agree with the totals the budgets read.
    assert any_ledger.spent(run_id="r1").tokens == EXPECTED[TotalKey("run", "r1", "all")].tokens
    midnight = NOW.replace(hour=0)
    assert any_ledger.spent(account="acme", since=midnight).tokens == 23


def test_two_ledgers_on_one_database_see_each_others_settled_spend(tmp_path: Path) -> None:
    first, second = (SqlLedger.local(tmp_path / "usage.db") for _ in range(2))
    first.record(entry(tokens=10))
    key = TotalKey("account_day", "acme", DAY)
    assert second.spent_in([key])[key].tokens == 10
    assert second.record(entry(tokens=5))[key].tokens == 15  # the write returns the whole total
    assert first.spent_in([key])[key] == Spend(15, 0.5)
    for ledger in (first, second):
        ledger.engine.dispose()


def test_an_older_ledger_file_gets_its_totals_from_its_entries(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    engine = make_engine(f"sqlite:///{path}")
    SQLModel.metadata.create_all(engine, tables=[TABLE])  # the file as ledgers wrote it before
    with engine.begin() as connection:
        for item in HISTORY:
            connection.execute(insert(TABLE).values(
                at=item.at, day=item.at.date(), account=item.account, agent=item.agent,
                run_id=item.run_id, provider=item.provider, model=item.model,
                input_tokens=item.input_tokens, output_tokens=item.output_tokens,
                cost=item.cost, latency_ms=item.latency_ms))
    engine.dispose()
    ledger = SqlLedger.local(path)
    assert_totals(ledger)
    ledger.engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_migration_fills_the_totals_from_the_usage_already_there(
    backend: str, tmp_path: Path
) -> None:
    for engine in migrated(backend, tmp_path, revision="0010"):
        ledger = SqlLedger(engine)
        with engine.begin() as connection:
            for item in HISTORY:
                connection.execute(insert(TABLE).values(
                    at=item.at, day=item.at.date(), account=item.account, agent=item.agent,
                    run_id=item.run_id, provider=item.provider, model=item.model,
                    input_tokens=item.input_tokens, output_tokens=item.output_tokens,
                    cost=item.cost, latency_ms=item.latency_ms))
        init_db(engine)
        assert_totals(ledger)


# ------------------------------------------------------------ a budget, two processes

BUDGETS = parse_config({"budgets": {"account_day_tokens": 100}}, "test").budgets
CALL = CallContext(account="acme")


def spend(guard: BudgetGuard, tokens: int) -> None:
    """One call estimated and then using `tokens` tokens."""
    with guard.reserve(CALL, Estimate(tokens, 0.0)) as reservation:
        guard.settle(CALL, Usage(tokens - 1, 1, 0.0, "m1", "stub", 1.0), reservation)


@pytest.fixture
def two_ledgers(tmp_path: Path) -> Iterator[tuple[SqlLedger, SqlLedger]]:
    """Two ledgers on one file: what two worker processes share."""
    ledgers = (SqlLedger.local(tmp_path / "usage.db"), SqlLedger.local(tmp_path / "usage.db"))
    yield ledgers
    for ledger in ledgers:
        ledger.engine.dispose()


def test_reading_before_every_call_refuses_what_another_process_used_up(
    two_ledgers: tuple[SqlLedger, SqlLedger],
) -> None:
    mine = BudgetGuard(BUDGETS, two_ledgers[0], lambda: NOW, fresh_s=0)
    theirs = BudgetGuard(BUDGETS, two_ledgers[1], lambda: NOW)
    spend(mine, 10)
    spend(theirs, 85)
    with pytest.raises(BudgetExceeded) as caught:
        spend(mine, 10)
    assert (caught.value.when, caught.value.spent) == ("before", 95)


def test_a_total_known_lately_lets_one_call_through_then_its_settle_refuses_it(
    two_ledgers: tuple[SqlLedger, SqlLedger],
) -> None:
    mine = BudgetGuard(BUDGETS, two_ledgers[0], lambda: NOW)  # knows its totals for 1 s
    theirs = BudgetGuard(BUDGETS, two_ledgers[1], lambda: NOW)
    spend(mine, 10)
    spend(theirs, 85)  # unseen by `mine` until it reads or writes the total again
    with pytest.raises(BudgetExceeded) as caught:
        spend(mine, 10)
    assert (caught.value.when, caught.value.spent, caught.value.needed) == ("after", 95, 10)
    assert two_ledgers[1].spent(account="acme").tokens == 105  # spent all the same
    with pytest.raises(BudgetExceeded) as caught:
        spend(mine, 1)
    assert (caught.value.when, caught.value.spent) == ("before", 105)


def test_a_known_total_is_read_again_once_it_is_old(
    two_ledgers: tuple[SqlLedger, SqlLedger],
) -> None:
    now = [NOW]
    mine = BudgetGuard(BUDGETS, two_ledgers[0], lambda: now[0])
    spend(mine, 10)
    spend(BudgetGuard(BUDGETS, two_ledgers[1], lambda: NOW), 85)
    now[0] = NOW + timedelta(seconds=1)
    with pytest.raises(BudgetExceeded) as caught:
        spend(mine, 10)
    assert (caught.value.when, caught.value.spent) == ("before", 95)

"""Budgets (refused before a call, settled after it) and the DLP filter, against the local
OpenAI-compatible server: a refused call never reaches it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models.audit import MemoryAuditSink
from models.budget import BudgetGuard
from models.errors import BudgetExceeded, DlpRefused
from models.gateway import ModelGateway
from models.ledger import MemoryLedger, SpendLedger, UsageEntry
from models.ledger_sql import SqlLedger
from models.report import usage_report
from models.types import CallContext, CompletionRequest, Message
from tests.models.conftest import stub_config
from tests.models.openai_stub_server import Answer, StubServer

AWS_KEY = "AKIAIOSFODNN7EXAMPLF"
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def any_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SpendLedger]:
    if request.param == "memory":
        yield MemoryLedger()
        return
    ledger = SqlLedger.local(tmp_path / "usage.db")
    yield ledger
    ledger.engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def budgeted(
    stub: StubServer, any_ledger: SpendLedger, audit: MemoryAuditSink, clock: Clock
) -> Callable[..., ModelGateway]:
    def build(**limits: float) -> ModelGateway:
        config = stub_config(stub, budgets=limits)
        guard = BudgetGuard(config.budgets, any_ledger, clock)
        return ModelGateway(config, any_ledger, audit=audit, budgets=guard)

    return build


def ask(
    text: str = "hello there", max_tokens: int | None = None, *, account: str = "local",
    agent: str = "", run_id: str | None = None,
) -> CompletionRequest:
    return CompletionRequest("one", (Message("user", text),), max_tokens=max_tokens,
                             context=CallContext(account=account, agent=agent, run_id=run_id))


def test_a_call_whose_estimate_cannot_fit_is_refused_before_it_is_sent(
    budgeted: Callable[..., ModelGateway], stub: StubServer
) -> None:
    with pytest.raises(BudgetExceeded) as caught:
        budgeted(call_tokens=100).complete(ask("x" * 400, max_tokens=10))  # 100 in + 10 out
    error = caught.value
    assert (error.budget, error.limit, error.spent, error.needed) == ("call.tokens", 100, 0, 110)
    assert str(error) == ("budget_exceeded: call.tokens is 100 tokens; 0 tokens spent, "
                          "this call needs 110 tokens")
    assert stub.requests == []


def test_a_run_budget_counts_what_the_run_already_spent(
    budgeted: Callable[..., ModelGateway], stub: StubServer, any_ledger: SpendLedger
) -> None:
    gateway = budgeted(run_tokens=30)
    gateway.complete(ask(max_tokens=10, run_id="r1"))  # estimate 3 + 10; used 2 + 4
    assert any_ledger.spent(run_id="r1").tokens == 6
    with pytest.raises(BudgetExceeded) as caught:
        gateway.complete(ask("y" * 60, max_tokens=10, run_id="r1"))  # 6 + (15 + 10) > 30
    assert caught.value.budget == "run.tokens" and caught.value.spent == 6
    gateway.complete(ask("y" * 60, max_tokens=10, run_id="r2"))  # another run: its own budget
    assert len(stub.requests) == 2


def test_cost_budgets_use_the_price_table(
    budgeted: Callable[..., ModelGateway], stub: StubServer
) -> None:
    # m1 costs $1 per 1k input tokens and $2 per 1k output tokens
    with pytest.raises(BudgetExceeded) as caught:
        budgeted(account_day_cost=0.01).complete(ask(max_tokens=10, account="acme"))
    assert caught.value.budget == "account_day.cost" and caught.value.unit == "usd"
    assert caught.value.needed == pytest.approx((3 * 1 + 10 * 2) / 1000)
    assert "$0.01 spent" not in str(caught.value) and "account_day.cost is $0.01" in str(
        caught.value)
    assert stub.requests == []


def test_usage_over_a_budget_is_recorded_and_the_answer_withheld(
    budgeted: Callable[..., ModelGateway], stub: StubServer, any_ledger: SpendLedger
) -> None:
    stub.script = [Answer(text="a much longer answer than anyone estimated for it")]
    gateway = budgeted(agent_day_tokens=9)
    with pytest.raises(BudgetExceeded) as caught:
        gateway.complete(ask("hi", max_tokens=8, agent="writer"))  # estimate 1 + 8 fits
    assert caught.value.when == "after" and caught.value.budget == "agent_day.tokens"
    assert any_ledger.spent(agent="writer").tokens == 1 + 9  # spent all the same


def test_day_budgets_start_again_at_midnight_utc(
    budgeted: Callable[..., ModelGateway], clock: Clock, any_ledger: SpendLedger
) -> None:
    gateway = budgeted(account_day_tokens=18)  # a call: 6 spent, 13 estimated
    gateway.complete(ask(max_tokens=10))
    with pytest.raises(BudgetExceeded):
        gateway.complete(ask(max_tokens=10))
    clock.now = NOW + timedelta(hours=9)  # 00:00 the next day
    gateway.complete(ask(max_tokens=10))


def test_the_usage_report_groups_by_day_model_and_agent(any_ledger: SpendLedger) -> None:
    def entry(at: datetime, model: str, agent: str, tokens: int) -> UsageEntry:
        return UsageEntry(at, "acme", agent, None, "stub", model, tokens, 1, 0.5, 3.0)

    for item in (entry(NOW, "m1", "a", 10), entry(NOW, "m1", "a", 5),
                 entry(NOW - timedelta(days=1), "m2", "b", 7),
                 entry(NOW - timedelta(days=40), "m1", "a", 100)):
        any_ledger.record(item)
    any_ledger.record(UsageEntry(NOW, "other", "a", None, "stub", "m1", 99, 0, 9.0, 1.0))
    report = usage_report(any_ledger, "acme", 30, lambda: NOW).as_dict()
    assert [(r["day"], r["model"], r["agent"], r["calls"], r["input_tokens"]) for r in
            report["rows"]] == [("2026-11-30", "m2", "b", 1, 7), ("2026-12-01", "m1", "a", 2, 15)]
    assert report["totals"] == {"calls": 3, "input_tokens": 22, "output_tokens": 3, "cost": 1.5}
    assert {(t.model, t.agent) for t in any_ledger.totals()} == {("m1", "a"), ("m2", "b")}


# ----------------------------------------------------------------- DLP


def dlp_gateway(stub: StubServer, audit: MemoryAuditSink, policy: str) -> ModelGateway:
    return ModelGateway(stub_config(stub, dlp=policy), MemoryLedger(), audit=audit)


def test_mask_sends_the_masked_prompt_and_audits_the_kinds_only(
    stub: StubServer, audit: MemoryAuditSink
) -> None:
    completion = dlp_gateway(stub, audit, "mask").complete(
        ask(f"deploy with {AWS_KEY} please", agent="ops"))
    sent = stub.requests[0].prompt_text
    assert AWS_KEY not in sent and "deploy with" in sent
    assert completion.masked == ("aws_access_key_id",)
    [dlp_event] = [e for e in audit.events if e.action == "model.dlp"]
    assert (dlp_event.outcome, dlp_event.agent) == ("masked", "ops")
    assert dlp_event.detail == {"direction": "prompt", "kinds": ["aws_access_key_id"]}
    assert AWS_KEY not in repr(audit.events)


def test_refuse_sends_nothing(stub: StubServer, audit: MemoryAuditSink) -> None:
    with pytest.raises(DlpRefused) as caught:
        dlp_gateway(stub, audit, "refuse").complete(ask(f"key {AWS_KEY}"))
    assert str(caught.value) == "DLP policy refused the prompt: it contains aws_access_key_id"
    assert stub.requests == []
    assert [(e.action, e.outcome) for e in audit.events] == [("model.dlp", "refused")]


def test_outputs_are_filtered_before_they_return(
    stub: StubServer, audit: MemoryAuditSink
) -> None:
    stub.script = [Answer(text=f"here it is {AWS_KEY} enjoy")]
    tokens: list[str] = []
    completion = dlp_gateway(stub, audit, "mask").complete(
        CompletionRequest("one", (Message("user", "x"),),
                          context=CallContext(on_token=tokens.append)))
    assert AWS_KEY not in completion.text and completion.text.startswith("here it is")
    assert tokens == [completion.text]  # scanned whole, then handed over in one piece
    stub.script = [Answer(text=f"again {AWS_KEY}")]
    with pytest.raises(DlpRefused, match="refused the output"):
        dlp_gateway(stub, audit, "refuse").complete(ask())


def test_a_template_may_ask_for_more_care_never_less(
    stub: StubServer, audit: MemoryAuditSink
) -> None:
    with pytest.raises(DlpRefused):
        dlp_gateway(stub, audit, "mask").complete(
            CompletionRequest("one", (Message("user", AWS_KEY),),
                              context=CallContext(dlp="refuse")))
    dlp_gateway(stub, audit, "mask").complete(
        CompletionRequest("one", (Message("user", AWS_KEY),), context=CallContext(dlp="off")))
    assert AWS_KEY not in stub.requests[-1].prompt_text


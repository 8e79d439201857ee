"""Spend on the marketplace: `GET /api/v1/usage` (the caller's account only) and the model
counters on `/metrics`, read from the registry database's `model_usage` table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from models.ledger import UsageEntry
from models.ledger_sql import SqlLedger
from models.types import server_account
from tests.marketplace.conftest import Actor, register


def spend(api: Any, actor: Actor, agent: str, tokens: int, at: datetime | None = None) -> None:
    registry = api.app.state.market.registry
    account = server_account(registry.authenticate(actor.token).publisher_id)
    SqlLedger(registry.engine).record(UsageEntry(
        at or datetime.now(UTC), account, agent, "run-1", "stub", "m1", tokens, 2 * tokens,
        tokens / 1000, 12.5,
    ))


def test_usage_is_the_callers_own_grouped_by_day_model_and_agent(api: Any) -> None:
    acme, bob = register(api, "acme"), register(api, "bob")
    spend(api, acme, "acme/writer", 10)
    spend(api, acme, "acme/writer", 5)
    spend(api, acme, "acme/writer", 7, datetime.now(UTC) - timedelta(days=3))
    spend(api, bob, "bob/other", 1000)
    answer = api.get("/api/v1/usage?days=1", headers=acme.auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(r["model"], r["agent"], r["calls"], r["input_tokens"], r["output_tokens"])
            for r in body["rows"]] == [("m1", "acme/writer", 2, 15, 30)]
    assert body["totals"]["calls"] == 2
    week = api.get("/api/v1/usage", params={"days": 7}, headers=acme.auth).json()
    assert week["totals"]["input_tokens"] == 22
    assert api.get("/api/v1/usage", headers=bob.auth).json()["totals"]["input_tokens"] == 1000


def test_usage_needs_a_token_and_a_sane_range(api: Any) -> None:
    acme = register(api, "acme")
    assert api.get("/api/v1/usage").status_code == 401
    for days in ("0", "367", "x"):
        answer = api.get(f"/api/v1/usage?days={days}", headers=acme.auth)
        assert answer.status_code == 422
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_metrics_count_tokens_and_cost_by_model_and_agent(api: Any) -> None:
    acme = register(api, "acme")
    spend(api, acme, "acme/writer", 10)
    spend(api, acme, "acme/writer", 5)
    text = api.get("/metrics").text
    assert ('agentfactory_model_tokens_total{agent="acme/writer",direction="input",model="m1"} '
            "15.0") in text
    assert ('agentfactory_model_tokens_total{agent="acme/writer",direction="output",model="m1"} '
            "30.0") in text
    assert 'agentfactory_model_cost_usd_total{agent="acme/writer",model="m1"} 0.015' in text

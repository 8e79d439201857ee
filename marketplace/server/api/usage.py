"""Usage: what the caller's account spent on model calls, by day, model and agent.

`GET /api/v1/usage?days=N` answers the same report as `agentfactory usage` (`models.report`),
read from the registry database's `model_usage` table, for the account of the token: no token
sees another account's spend. `days` counts back from today (UTC), today included.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from marketplace.server.api.deps import CurrentPrincipal, StateDep
from marketplace.server.api.problems import problem_responses
from models.ledger_sql import SqlLedger
from models.report import MAX_DAYS, usage_report
from models.types import server_account

router = APIRouter(tags=["usage"])


class UsageRowOut(BaseModel):
    day: date
    model: str
    agent: str
    calls: int = Field(ge=0)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cost: float = Field(ge=0, description="USD, from the deployment's price table.")


class UsageTotalsOut(BaseModel):
    calls: int = Field(ge=0)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cost: float = Field(ge=0)


class UsageOut(BaseModel):
    account: str
    since: datetime
    rows: list[UsageRowOut]
    totals: UsageTotalsOut


@router.get("/usage", response_model=UsageOut, responses=problem_responses(401))
def read_usage(
    principal: CurrentPrincipal,
    state: StateDep,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="Days back, today included.")] = 30,
) -> UsageOut:
    """The caller's account's model usage by day, model and agent."""
    report = usage_report(SqlLedger(state.registry.engine),
                          server_account(principal.publisher_id), days)
    return UsageOut.model_validate(report.as_dict())

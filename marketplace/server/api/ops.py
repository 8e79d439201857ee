"""Operations endpoints: `/healthz`, `/metrics` (Prometheus or OpenMetrics text, by the `Accept`
header) and the factory's figures as JSON under `/api/v1/metrics/agent_factory`.

`/healthz` answers 200 only when the database answers a trivial query, so a load balancer stops
sending traffic to a worker that lost its database. Scrapes read the factory's own counters at
scrape time (see `marketplace.server.metrics`); nothing here mutates state.
"""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from marketplace.server.api.deps import MarketState, get_state

health_router = APIRouter(tags=["ops"])
api_router = APIRouter(tags=["ops"])


@functools.cache
def _version() -> str:
    """The installed version, read once: reading a distribution's metadata parses its files."""
    try:
        return version("agentfactory")
    except PackageNotFoundError:
        return "0+unknown"


class Health(BaseModel):
    status: str
    version: str
    database: str


class FactoryFigures(BaseModel):
    templates_loaded: int
    cache_hits: int
    cache_misses: int
    cache_hit_rate: float
    agents_created: int
    sandbox_runs: int
    sandbox_failures: dict[str, int]
    publishes: int
    downloads: int
    installs: int
    detail_cache_hits: int
    detail_cache_misses: int


def _ping(state: MarketState) -> None:
    with state.registry.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@health_router.get("/healthz", response_model=Health)
async def healthz(request: Request) -> Health:
    state = get_state(request)
    await run_in_threadpool(_ping, state)
    return Health(status="ok", version=_version(), database="ok")


@health_router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    metrics = get_state(request).metrics
    body, content_type = metrics.exposition(request.headers.get("accept"))
    return Response(body, headers={"content-type": content_type})


@api_router.get("/metrics/agent_factory", response_model=FactoryFigures)
async def factory_figures(request: Request) -> FactoryFigures:
    state = get_state(request)
    metrics = state.metrics
    snap = metrics.snapshot()
    return FactoryFigures(
        templates_loaded=snap.templates_loaded,
        cache_hits=snap.cache_hits,
        cache_misses=snap.cache_misses,
        cache_hit_rate=snap.cache_hit_rate,
        agents_created=snap.agents_created,
        sandbox_runs=snap.sandbox_runs,
        sandbox_failures=snap.sandbox_failures,
        publishes=metrics.count(metrics.publishes),
        downloads=metrics.count(metrics.downloads),
        installs=metrics.count(metrics.installs),
        detail_cache_hits=state.cache.hits,
        detail_cache_misses=state.cache.misses,
    )

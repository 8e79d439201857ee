"""Operations endpoints: `/healthz`, `/metrics` (Prometheus text) and the factory's figures as
JSON under `/api/v1/metrics/agent_factory`.

`/healthz` answers 200 only when the database answers a trivial query, so a load balancer stops
sending traffic to a worker that lost its database. Scrapes read the factory's own counters at
scrape time (see `marketplace.server.metrics`); nothing here mutates state.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from marketplace.server.api.deps import MarketState, get_state
from marketplace.server.metrics import FactorySnapshot

health_router = APIRouter(tags=["ops"])
api_router = APIRouter(tags=["ops"])

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _version() -> str:
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


def factory_snapshot(state: MarketState) -> FactorySnapshot:
    factory: Any = state.factory
    if factory is None:
        return FactorySnapshot()
    stats = factory.stats()
    templates = stats.templates
    runs, failures = _sandbox_counts()
    return FactorySnapshot(
        templates_loaded=templates.templates_loaded,
        cache_hits=templates.cache_hits,
        cache_misses=templates.cache_misses,
        agents_created=stats.agents_created,
        sandbox_runs=runs,
        sandbox_failures=failures,
    )


def _sandbox_counts() -> tuple[int, dict[str, int]]:
    """Tasks this server ran in the sandbox (vetting uploads, installed agents), and the
    failures among them by kind. Read without importing the sandbox if it never ran."""
    runtime = sys.modules.get("sandbox.runtime")
    counts: dict[str, int] = runtime.run_counts() if runtime is not None else {}
    failures = {kind: n for kind, n in counts.items() if kind != "ok"}
    return sum(counts.values()), failures


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
    state = get_state(request)
    text = state.metrics.render(factory_snapshot(state))
    return Response(text, media_type=PROMETHEUS_TEXT)


@api_router.get("/metrics/agent_factory", response_model=FactoryFigures)
async def factory_figures(request: Request) -> FactoryFigures:
    state = get_state(request)
    snap = factory_snapshot(state)
    return FactoryFigures(
        templates_loaded=snap.templates_loaded,
        cache_hits=snap.cache_hits,
        cache_misses=snap.cache_misses,
        cache_hit_rate=snap.cache_hit_rate,
        agents_created=snap.agents_created,
        sandbox_runs=snap.sandbox_runs,
        sandbox_failures=snap.sandbox_failures,
        publishes=int(state.metrics.publishes.value()),
        downloads=int(state.metrics.downloads.value()),
        installs=int(state.metrics.installs.value()),
        detail_cache_hits=state.cache.hits,
        detail_cache_misses=state.cache.misses,
    )

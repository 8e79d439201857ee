"""The marketplace application: `create_app(settings) -> FastAPI`.

Lifespan, in order: create the home directory, open the registry (creating the database on first
start), connect the response cache to the database's change signals (so other processes' writes
reach it: `invalidation`), then, in the one process of those starting together that gets the
start-up turn (`startup`), clean orphan blobs and publish the built-in agents under `builtin/`
when asked (idempotent); build the agent factory with the built-in plugins and the installed
agents, start the run service (its worker processes: `start_runs`); on shutdown stop the run
workers, close the factory, the change feed, then the registry. Everything lives on one
`MarketState` per app: two apps in one process (two tests) share nothing.

Plugins: each app builds one plugin manager (`app.state.plugins`) when it is created. Routers
contributed through `agentfactory_api_routers` are mounted under `/api/v1/ext` then (anything
else stops the app from being created, naming the plugin); the registry is given the plugins'
`agentfactory_validate_package` vetoes as its package check, and the factory uses the same
manager.

Middleware order (outermost first): the request id (around Starlette's own error handling too,
so a 500 carries it and is logged under it: `MarketplaceApp`), request latency (so refusals are
timed too), then body caps, then FastAPI's own exception handling, where every error becomes a
problem document (`api.problems`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pluggy
from anyio import to_thread
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from core.errors import BadContribution
from core.plugins import answers, make_plugin_manager, package_check
from marketplace.server.api import api_router, health_router
from marketplace.server.api.cache import ResponseCache
from marketplace.server.api.deps import MarketState
from marketplace.server.api.fastpath import CachedDetailMiddleware
from marketplace.server.api.middleware import (
    BodyLimitMiddleware,
    LatencyMiddleware,
    RequestIdMiddleware,
)
from marketplace.server.api.problems import READ_PROBLEMS, install_problem_handlers
from marketplace.server.metrics import ENV_MULTIPROC_DIR, ServerMetrics
from marketplace.server.ratelimit import make_limiter
from marketplace.server.settings import ServerSettings
from marketplace.server.startup import HomeMembership, MachineEngine, startup_turn
from marketplace.server.web import mount_web

if TYPE_CHECKING:
    from core.config import FactorySettings
    from registry.blobs import BlobStore
    from runs import RunEngine, RunService, RunStore, RunWatch, WorkerConfig

log = logging.getLogger("agentfactory.marketplace")

API_PREFIX = "/api/v1"
EXT_PREFIX = f"{API_PREFIX}/ext"
ROUTERS_HOOK = "agentfactory_api_routers"


def open_blobs(settings: ServerSettings) -> BlobStore | None:
    """The configured blob store, or None for the default directory under the home. An S3
    store is checked first: a missing bucket or missing credentials is `BlobStoreUnavailable`
    (one line) when the app is created, not at the first publish."""
    if settings.blob_url is None:
        return None
    from registry.blobs_s3 import S3BlobStore

    return S3BlobStore.open(
        settings.blob_url, endpoint=settings.s3_endpoint, region=settings.s3_region
    )


def orphan_grace_s(settings: ServerSettings) -> float:
    """How old an orphan blob must be before the start-up cleanup deletes it: at once with the
    embedded defaults (this process is the only writer), else the grace period, since another
    process may be between its blob write and its commit."""
    if settings.database_url is None and settings.blob_url is None:
        return 0.0
    return settings.blob_grace_s


def build_state(
    settings: ServerSettings,
    metrics: ServerMetrics | None = None,
    plugins: pluggy.PluginManager | None = None,
    blobs: BlobStore | None = None,
) -> MarketState:
    """Open the registry and everything around it (the lifespan's first half, usable alone)."""
    from registry.service import Registry

    settings.home.mkdir(parents=True, exist_ok=True)
    vetter = gate = None
    if settings.vet_uploads:
        from marketplace.server.vetting import VettingGate, publish_vetter

        vetter, gate = publish_vetter(settings), VettingGate.from_settings(settings)
    check = package_check(plugins or make_plugin_manager(), factory_settings(settings))
    registry = Registry.open(
        settings.home, settings.database_url, vetter=vetter, package_check=check,
        blobs=blobs if blobs is not None else open_blobs(settings),
    )
    engine = registry.engine
    return MarketState(
        settings=settings,
        registry=registry,
        metrics=metrics or ServerMetrics(),
        cache=ResponseCache(settings.detail_cache_size, settings.cache_ttl_s, settings.clock),
        publish_limiter=make_limiter(settings, engine, settings.publish_rate, "publish"),
        review_limiter=make_limiter(settings, engine, settings.review_rate, "review"),
        register_limiter=make_limiter(settings, engine, settings.register_rate, "register"),
        token_limiter=make_limiter(settings, engine, settings.token_rate, "token"),
        vetting_gate=gate,
    )


def factory_settings(settings: ServerSettings) -> FactorySettings:
    """The operator's environment (allowed tools, trusted publishers), with the server's own
    choices on top: what the factory and the plugins' validators are given."""
    from core.config import FactorySettings

    return replace(
        FactorySettings.from_env(),
        template_dirs=list(settings.template_dirs),
        sandbox_policy=settings.sandbox_policy,
    )


def build_factory(
    settings: ServerSettings, plugins: pluggy.PluginManager | None = None
) -> tuple[Any, Callable[[], None]]:
    """The server's agent factory (built-in plugins and, through the `installed_agents` entry
    point, the installed agents) and a function that stops keeping it current.

    Installs made while the server runs reach the factory through a watch on the lockfile; the
    installed-agents plugin reads `$AGENTFACTORY_HOME`, so the watch runs only when that is the
    server's home (`agentfactory serve` makes it so).
    """
    from core.factory import AgentFactory
    from core.paths import agentfactory_home

    factory = AgentFactory(factory_settings(settings), plugin_manager=plugins)
    if agentfactory_home().resolve() != settings.home.resolve():
        return factory, lambda: None
    from marketplace.client.installed import watch_installed

    return factory, watch_installed(factory)


def worker_config(settings: ServerSettings) -> WorkerConfig:
    """How run worker processes build their factory: like the server's, and they see installs
    made while they run."""
    from runs import WorkerConfig

    return WorkerConfig(
        template_dirs=[str(p) for p in settings.template_dirs],
        sandbox_policy=settings.sandbox_policy,
        refresh="marketplace.client.installed:refresh_factory",
    )


def start_runs(settings: ServerSettings, state: MarketState) -> RunService:
    """The run service over the registry's database, its engine started. The embedded one
    (`local`) runs worker processes built like the server's factory, in one API process per
    home (`startup.MachineEngine`); with the embedded database that process is the only engine
    on it, so runs left `running` by an earlier server are given back to the queue at once. With
    `procrastinate`, runs are jobs for `agentfactory worker` processes and this process starts
    none."""
    from runs import RunService, RunStore, RunWatch

    store = RunStore(state.registry.engine, settings.runs)
    watch = RunWatch()
    engine: RunEngine
    if settings.runs.engine == "procrastinate" and settings.database_url is not None:
        from runs.distributed import ProcrastinateEngine

        engine = ProcrastinateEngine(store, settings.database_url, on_change=watch.notify)
    else:
        # One embedded engine per home (machine), in whichever API process holds its lock.
        engine = MachineEngine(
            lambda: local_engine(settings, store, watch), settings.home,
            retry_s=settings.runs.sweep_s,
        )
    engine.start()
    return RunService(store, engine, watch)


def local_engine(settings: ServerSettings, store: RunStore, watch: RunWatch) -> RunEngine:
    """The embedded engine, in a process of its own (`runs.engine_process`) so that its
    transactions and slot threads do not compete with requests for this process's core; in
    this process only for a database no other process can open (SQLite in memory)."""
    from registry.db import in_memory
    from runs import LocalEngine
    from runs.engine_process import EngineSpec, ProcessEngine

    url = store.engine.url
    orphans = settings.database_url is None  # the embedded database: no other engine on it
    if in_memory(url):
        return LocalEngine(
            store, worker_config(settings), on_change=watch.notify, on_start=watch.progress,
            on_final=watch.settle, orphans=orphans,
        )
    spec = EngineSpec(
        url.render_as_string(hide_password=False), settings.runs, worker_config(settings),
        orphans, log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
    )
    return ProcessEngine(
        spec, on_change=watch.notify, on_start=watch.progress, on_final=watch.settle
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServerSettings = app.state.settings
    state = build_state(settings, app.state.metrics, app.state.plugins, app.state.blobs)
    membership = HomeMembership(settings.home)
    try:
        await follow_changes(state)
        # Of the processes starting together, one does the start-up work (`startup`).
        with startup_turn(state.registry.engine, settings.home) as mine:
            alone = membership.join(inside_turn=mine)
            if mine:
                startup_work(settings, state, alone)
        state.factory, stop_watching = build_factory(settings, app.state.plugins)
        state.metrics.track(state.factory)
        from models.ledger_sql import SqlLedger

        state.metrics.track_usage(SqlLedger(state.registry.engine))
        state.runs = start_runs(settings, state)
        # Registry queries run in anyio's worker threads: as many as the operator allows.
        limiter = to_thread.current_default_thread_limiter()
        limiter.total_tokens = state.factory.settings.worker_threads
        app.state.market = state
        try:
            yield
        finally:
            stop_watching()
    finally:
        if state.runs is not None:
            state.runs.close()  # stops the run workers and reaps them
        if state.factory is not None:
            state.factory.close()
        state.cache.feed.close()
        state.registry.close()
        membership.leave()
        if os.environ.get(ENV_MULTIPROC_DIR):
            # Its live gauges go; its counters and histograms stay in the sums (`serve`).
            from prometheus_client import multiprocess

            # prometheus-client leaves this function unannotated.
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


async def follow_changes(state: MarketState) -> None:
    """Connect the cache to the database's change signals (`invalidation`); on PostgreSQL,
    wait (bounded) for LISTEN to be in place so the first requests can use the cache."""
    from marketplace.server.invalidation import PgChangeFeed, feed_for

    feed = feed_for(state.registry.engine)
    state.cache.follow(feed)
    if isinstance(feed, PgChangeFeed):
        await to_thread.run_sync(feed.wait_connected, 10.0)


def startup_work(settings: ServerSettings, state: MarketState, alone: bool) -> None:
    """Orphan cleanup and the bootstrap, done by one process of those starting together."""
    if settings.database_url is None or settings.blob_url is not None:
        # Blobs no release refers to are leftovers of a crash. When this process alone serves
        # the embedded home, they go at once; otherwise (other processes, shared object storage)
        # only once older than the grace period (`orphan_grace_s`).
        grace = orphan_grace_s(settings) if alone else settings.blob_grace_s
        removed = state.registry.cleanup_blobs(grace)
        if removed:
            log.info("removed %d orphan blob(s) left by an interrupted publish", len(removed))
    if settings.bootstrap:
        from marketplace.server.bootstrap import publish_builtins

        published = publish_builtins(state.registry, settings.home)
        if published:
            log.info("published %d built-in agent(s) under builtin/", len(published))


class MarketplaceApp(FastAPI):
    """FastAPI with `RequestIdMiddleware` outside everything, Starlette's error handling
    included (`add_middleware` can only place a middleware inside it)."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestIdMiddleware(super().build_middleware_stack())


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings.from_env()
    # A bad factory setting (environment or config.toml) fails here, as one line, before `serve`
    # prints its banner, rather than inside the lifespan.
    factory_settings(settings)
    settings.runs.require_database(settings.database_url)
    app = MarketplaceApp(
        title="Agent Factory marketplace",
        version="1",
        summary="Publish, find, install and review signed agent packages.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served by the web pages from local assets (web/apidocs.py)
        redoc_url=None,
        default_response_class=JSONResponse,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.blobs = open_blobs(settings)  # a missing bucket stops the start here
    # Created here, not in the lifespan, because the latency middleware is wired before start.
    app.state.metrics = metrics = ServerMetrics()
    install_problem_handlers(app)
    app.include_router(health_router)
    app.include_router(api_router, prefix=API_PREFIX, responses=READ_PROBLEMS)
    app.state.plugins = plugins = make_plugin_manager()
    for router in plugin_routers(plugins):
        app.include_router(router, prefix=EXT_PREFIX, responses=READ_PROBLEMS)
    # Innermost of the middlewares, so the outer ones (metrics, caps, headers) see its answers.
    app.add_middleware(CachedDetailMiddleware)
    mount_web(app)  # after the problem handlers: it replaces the 404 page for browsers only
    app.add_middleware(
        BodyLimitMiddleware,
        upload_limit=settings.max_upload_bytes,
        json_limit=settings.max_json_bytes,
    )
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    return app


def plugin_routers(plugins: pluggy.PluginManager) -> list[APIRouter]:
    """Every router the plugins contribute; anything else is a `BadContribution` naming the
    plugin, raised before any router is mounted."""
    routers: list[APIRouter] = []
    for plugin, contributed in answers(plugins, ROUTERS_HOOK):
        if contributed is None:
            continue
        if not isinstance(contributed, list | tuple):
            raise BadContribution(plugin, ROUTERS_HOOK, contributed, "a list of APIRouter")
        for router in contributed:
            if not isinstance(router, APIRouter):
                raise BadContribution(plugin, ROUTERS_HOOK, router, "a fastapi.APIRouter")
            routers.append(router)
    return routers

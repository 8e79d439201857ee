"""The JSON API: one router per resource, gathered into `api_router` (mounted at `/api/v1`)
and `health_router` (`/healthz`, `/metrics`, at the root)."""

from fastapi import APIRouter

from marketplace.server.api import (
    audit,
    keys,
    log,
    ops,
    packages,
    publishers,
    retire,
    reviews,
    runs,
    usage,
)
from marketplace.server.api.ops import health_router

api_router = APIRouter()
# Routes are matched in order, one by one: the busiest resource (runs) comes first. No two of
# these routers share a path, so the order changes nothing else.
for _module in (runs, publishers, keys, packages, retire, reviews, log, usage, audit):
    api_router.include_router(_module.router)
api_router.include_router(ops.api_router)

__all__ = ["api_router", "health_router"]

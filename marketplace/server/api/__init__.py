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
for _module in (publishers, keys, packages, retire, reviews, runs, log, usage, audit):
    api_router.include_router(_module.router)
api_router.include_router(ops.api_router)

__all__ = ["api_router", "health_router"]

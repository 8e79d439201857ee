"""Cached package-detail reads answered before FastAPI's routing.

`GET /api/v1/packages/{namespace}/{name}` is the hottest read of the marketplace (every package
page, `info`, every install). Its encoded response already sits in the `ResponseCache`; routing,
dependency injection and the endpoint machinery cost several times more than serving those
bytes. This pure-ASGI layer answers a cache hit directly and passes everything else (a miss,
any other path or method) to the application unchanged, which computes and caches as before.

Invariants: it only ever serves bytes the endpoint itself put in the cache, under the same key
and the same invalidation (`api.cache`, other processes' writes included: `lookup`), with the
endpoint's media type; it is installed inside the other middlewares, so latency metrics, body
caps and security headers apply to its answers exactly as to the endpoint's.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from registry.errors import InvalidName
from registry.names import normalize_name

PREFIX = "/api/v1/packages/"
JSON = b"application/json"


@dataclass(frozen=True)
class _Route:
    """What the latency middleware reads of a matched route: its path template."""

    path: str


DETAIL_ROUTE = _Route(PREFIX + "{namespace}/{name}")


class CachedDetailMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._cached(scope) if scope["type"] == "http" else None
        if body is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = DETAIL_ROUTE
        headers = [(b"content-type", JSON), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _cached(scope: Scope) -> bytes | None:
        path: str = scope["path"]
        if scope["method"] != "GET" or not path.startswith(PREFIX):
            return None
        namespace, slash, name = path[len(PREFIX):].partition("/")
        if not (namespace and slash and name) or "/" in name:
            return None
        market = getattr(scope["app"].state, "market", None)
        if market is None:  # not started yet: let the application answer
            return None
        try:
            key = normalize_name(f"{namespace}/{name}")
        except InvalidName:  # the endpoint answers it with the proper problem
            return None
        body: bytes | None = await market.cache.lookup("detail", key, scope)
        return body

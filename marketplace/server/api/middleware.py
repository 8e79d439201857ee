"""Pure-ASGI middlewares: request ids, request-body caps and request-latency metrics.

Pure ASGI (not `BaseHTTPMiddleware`) because they wrap every request and must cost microseconds.

Body caps: a declared `Content-Length` over the cap is refused with a 413 problem before a byte
of the body is read; a body without a length (chunked) is counted as it streams and the read
fails with `UploadTooLarge` as soon as the count passes the cap, so an oversized upload is never
held in memory or on disk. Uploads (`POST /api/v1/packages`) get `max_upload_bytes`, every other
request the small JSON cap.

Latency: observed per method, route template (never the raw path, which would explode the label
set) and status, including requests that failed.

Request ids: `RequestIdMiddleware` wraps the whole application, Starlette's error handling
included (`app.MarketplaceApp`), so every answer (a page, a cached read, a 413, a 500) carries
`X-Request-ID` and everything the request does runs under that correlation id (`core.context`).
The client's header is kept only when acceptable (`core.context.acceptable`); anything else (a
CR/LF, 10 KB, non-ASCII) is replaced by a fresh id, never echoed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.context import accept, correlated
from marketplace.server.api.problems import PROBLEM_JSON, UploadTooLarge, problem_body
from marketplace.server.metrics import ServerMetrics

API_PREFIX = "/api/v1"
UPLOAD_PATH = f"{API_PREFIX}/packages"


REQUEST_ID = b"x-request-id"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for key, value in scope["headers"] if key == REQUEST_ID), None)
        request_id = accept(given)
        header = (REQUEST_ID, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != REQUEST_ID]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        with correlated(request_id):
            await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, upload_limit: int, json_limit: int) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.json_limit = json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        is_upload = scope["method"] == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH
        limit = self.upload_limit if is_upload else self.json_limit
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_too_large(scope, send, UploadTooLarge(declared, limit))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise UploadTooLarge(None, limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_too_large(scope: Scope, send: Send, exc: UploadTooLarge) -> None:
    body = problem_body(413, "Content too large", str(exc), "UploadTooLarge", scope["path"])
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                # The body was not read: the client must not reuse this connection for another.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class LatencyMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            # Recent FastAPI keeps an included route's own path; put the mount prefix back.
            if scope["path"].startswith(API_PREFIX) and not template.startswith(API_PREFIX):
                template = API_PREFIX + template
            self.metrics.requests.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - start
            )

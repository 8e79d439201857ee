"""RFC 9457 problem details: the only place where errors become HTTP statuses.

Routers and the registry raise domain errors (`AgentFactoryError` subclasses carrying their
values); `PROBLEMS` maps each class to a status and a title, looked up along the exception's MRO
so a subclass inherits its parent's status unless listed itself. Every problem body has `type`,
`title`, `status`, `detail` (the error's own one-line message), `instance` (the request path) and
`code` (the error class name, which clients match on). Validation errors list their field paths
under `errors` (with the request location: `body.stars`, `query.page`) and say in `detail`
`field: message` for each, in the field's own terms (`stars: must be 1 to 5`), never pydantic's
internals. A `405` lists in `Allow` every method some route accepts at that path, and `OPTIONS`
on any known path answers `204` with the same `Allow`. An unexpected exception is logged with its
traceback and answered as a bare 500: no internals leave the server.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match, Mount

from core import errors as core_errors
from core.errors import AgentFactoryError
from marketplace.server.ratelimit import RateLimited
from registry import errors as reg
from runs import errors as run_errors
from sandbox import errors as sbx

log = logging.getLogger("agentfactory.marketplace")

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:agentfactory:problem:"


class UploadTooLarge(AgentFactoryError):
    """A request body is larger than the server accepts."""

    def __init__(self, size: int | None, limit: int) -> None:
        self.size = size
        self.limit = limit
        what = f"{size} bytes" if size is not None else "the request body"
        super().__init__(f"{what} exceeds the upload limit of {limit} bytes")


# error class -> (status, title). Order does not matter: lookup walks the raised class's MRO.
PROBLEMS: dict[type[BaseException], tuple[int, str]] = {
    AgentFactoryError: (400, "Bad request"),
    # core
    core_errors.TemplateNotFound: (404, "Template not found"),
    core_errors.TemplateValidationError: (422, "Invalid template"),
    core_errors.TemplateVetoed: (422, "Template refused"),
    core_errors.PackageVetoed: (422, "Package refused by a plugin"),
    core_errors.AgentInputError: (400, "Invalid agent input"),
    # registry
    reg.ManifestError: (422, "Invalid manifest"),
    reg.ArchiveError: (400, "Invalid archive"),
    reg.UnsafeEntry: (400, "Unsafe archive entry"),
    reg.ArchiveTooLarge: (413, "Archive too large"),
    reg.SignatureMismatch: (400, "Signature does not verify"),
    reg.UnknownKey: (404, "Unknown signing key"),
    reg.RevokedKey: (400, "Revoked signing key"),
    reg.InvalidKey: (400, "Invalid key"),
    reg.InvalidVersion: (400, "Invalid version"),
    reg.InvalidName: (400, "Invalid name"),
    reg.DuplicateRelease: (409, "Version already published"),
    reg.DuplicateDigest: (409, "Archive already published"),
    reg.ReservedName: (403, "Reserved name"),
    reg.LookalikeName: (409, "Name too similar to an existing package"),
    reg.NotFound: (404, "Not found"),
    reg.AuthenticationError: (401, "Authentication required"),
    reg.PermissionDenied: (403, "Forbidden"),
    reg.InvalidReview: (422, "Invalid review"),
    reg.VettingFailed: (422, "Package failed vetting"),
    reg.NoMatchingRelease: (404, "No matching release"),
    reg.Conflict: (409, "Conflict"),
    reg.BlobStoreUnavailable: (503, "Blob store unavailable"),
    # runs
    run_errors.EngineUnavailable: (503, "Run engine unavailable"),
    # sandbox
    sbx.SandboxError: (500, "Sandbox failure"),
    sbx.InvalidAgentSource: (400, "Invalid agent source"),
    sbx.VettingError: (422, "Package cannot be vetted"),
    sbx.AgentRunError: (422, "Agent failed in the sandbox"),
    # marketplace server
    RateLimited: (429, "Too many requests"),
    UploadTooLarge: (413, "Content too large"),
}


# The body every error answers with, as the OpenAPI document declares it.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "the error class name clients match on"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "message"],
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "retry_after": {"type": "integer"},
    },
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries declaring problem documents for `codes` in the OpenAPI document."""
    return {
        code: {
            "description": _DESCRIPTIONS.get(code, "Problem"),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
        for code in codes
    }


_DESCRIPTIONS = {
    400: "Bad request (a domain rule refused the input)",
    401: "Missing, malformed or revoked token",
    403: "The token lacks the scope, or the resource belongs to another publisher",
    404: "No such resource",
    409: "Conflicts with an existing resource",
    413: "Request body too large",
    422: "The request does not validate",
    429: "Write rate limit reached (see Retry-After)",
}
# Every API operation may refuse its input or not find what it names.
READ_PROBLEMS = problem_responses(400, 404, 422)
# Writes also authenticate, check scope and ownership, cap bodies and spend a rate budget.
WRITE_PROBLEMS = problem_responses(401, 403, 409, 413, 429)


def status_for(exc: BaseException) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in PROBLEMS:
            return PROBLEMS[cls]
    return 500, "Internal server error"


def _slug(code: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", code).lower()


def problem_body(
    status: int, title: str, detail: str, code: str, instance: str = "", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + _slug(code),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _extras(exc: AgentFactoryError) -> tuple[dict[str, Any], dict[str, str]]:
    """Structured fields and headers some errors add to their problem."""
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    errors = getattr(exc, "errors", None)
    if isinstance(exc, reg.ManifestError | core_errors.TemplateValidationError) and errors:
        extra["errors"] = [{"path": path, "message": msg} for path, msg in errors]
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
        extra["retry_after"] = exc.retry_after
    if isinstance(exc, reg.AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="agentfactory"'
    return extra, headers


async def domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AgentFactoryError)
    status, title = status_for(exc)
    extra, headers = _extras(exc)
    body = problem_body(status, title, str(exc), type(exc).__name__, request.url.path, **extra)
    return problem_response(status, body, headers)


_LOCATIONS = frozenset({"body", "path", "query", "header", "cookie"})
# Pydantic's wording where it would puzzle a user; every other message is pydantic's own, or
# the field's rule (`api.fields`), which is already written for people.
_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "not a field of this request",
    "json_invalid": "the body is not valid JSON",
}


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _field(error: dict[str, Any]) -> str:
    """The field as the user knows it: `body.stars` is `stars`; a whole body is `body`."""
    parts = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        return "body"
    if len(parts) > 1 and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts) or "request"


def _message(error: dict[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    fields = [{"path": _loc(e.get("loc", ())), "message": _message(e)} for e in errors]
    detail = "; ".join(f"{_field(e)}: {_message(e)}" for e in errors) or "invalid request"
    body = problem_body(
        422, "Validation failed", detail, "RequestValidationError", request.url.path, errors=fields
    )
    return problem_response(422, body)


_HTTP_CODES = {
    401: "AuthenticationError",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "UploadTooLarge",
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app accepts at the request's path, found by asking each
    route whether it would take the request with that method (so included routers, web pages
    and prefixes count as routing sees them); `OPTIONS` too when any is, since the 405 handler
    answers it. Empty when no route has this path."""
    allowed = []
    for method in _METHODS:
        probe = dict(request.scope, method=method)
        for route in request.app.router.routes:
            if not isinstance(route, Mount) and route.matches(probe)[0] is Match.FULL:
                allowed.append(method)
                break
    return [*allowed, "OPTIONS"] if allowed else []


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such endpoint: {request.method} {request.url.path}"
    if exc.status_code == 405:
        # Starlette names only the first route at this path; the path may have several.
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=headers)
        allow = headers["Allow"]
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allow}"
    code = _HTTP_CODES.get(exc.status_code, "HTTPError")
    title = "Method not allowed" if exc.status_code == 405 else detail
    body = problem_body(exc.status_code, title, detail, code, request.url.path)
    return problem_response(exc.status_code, body, headers)


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    body = problem_body(
        500,
        "Internal server error",
        "the server failed to handle this request; the error was logged",
        "InternalError",
        request.url.path,
    )
    return problem_response(500, body)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AgentFactoryError, domain_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)

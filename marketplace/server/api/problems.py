"""RFC 9457 problem details: the only place where errors become HTTP statuses.

Routers and the registry raise domain errors (`AgentFactoryError` subclasses carrying their
values); `PROBLEMS` maps each class to a status and a title, looked up along the exception's MRO
so a subclass inherits its parent's status unless listed itself. Every problem body has `type`,
`title`, `status`, `detail` (the error's own one-line message), `instance` (the request path) and
`code` (the error class name, which clients match on). Validation errors list their field paths
under `errors`. An unexpected exception is logged with its traceback and answered as a bare 500:
no internals leave the server.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core import errors as core_errors
from core.errors import AgentFactoryError
from marketplace.server.ratelimit import RateLimited
from registry import errors as reg
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


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [{"path": _loc(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()]
    detail = "; ".join(f"{f['path']}: {f['message']}" for f in fields) or "invalid request"
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


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such endpoint: {request.method} {request.url.path}"
    code = _HTTP_CODES.get(exc.status_code, "HTTPError")
    body = problem_body(exc.status_code, detail, detail, code, request.url.path)
    return problem_response(exc.status_code, body, dict(exc.headers or {}))


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

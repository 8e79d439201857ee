"""What every web handler shares: the Jinja environment, the visitor's session, rendering,
and turning domain errors into HTML error pages.

Invariants: templates are compiled once per process (one cached `Environment` with autoescape on
for every template and `auto_reload` off); user content reaches a template only as a value, never
as template source. The visitor is looked up on every request: the session id in the cookie
must name a live server-side session (not expired, not signed out, its token not revoked), else
the visitor is anonymous; so signing out, expiry and revocation take effect at once.
Error pages never echo a traceback: the domain error's own one-line message is enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.errors import AgentFactoryError
from marketplace.server.api.deps import MarketState, get_state
from marketplace.server.client_address import is_https
from marketplace.server.ratelimit import RateLimited
from marketplace.server.web.security import (
    SESSION_COOKIE,
    CsrfSigner,
    load_or_create_secret,
    read_session_id,
)
from marketplace.server.web.views import package_url, plural, star_glyphs
from registry import errors as reg
from registry.names import normalize_part
from registry.schemas import Principal, WebSessionPublic

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"


@lru_cache(maxsize=1)
def template_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(package_url=package_url, star_glyphs=star_glyphs)
    env.filters["plural"] = plural
    return env


def signer_for(request: Request) -> CsrfSigner:
    """The app's CSRF signer, created on first use from the secret kept in the home."""
    app_state = request.app.state
    signer: CsrfSigner | None = getattr(app_state, "web_signer", None)
    if signer is None:
        signer = CsrfSigner(load_or_create_secret(get_state(request).settings.home))
        app_state.web_signer = signer
    return signer


@dataclass(frozen=True)
class Visitor:
    """One request's view of who is browsing: the cookie's session id (signed in or not) and,
    when it names a live server-side session, that session."""

    state: MarketState
    signer: CsrfSigner
    session_id: str | None
    session: WebSessionPublic | None

    @property
    def principal(self) -> Principal | None:
        return self.session.principal if self.session else None

    @property
    def csrf_token(self) -> str:
        if self.session is not None:
            return self.session.csrf_secret
        return self.signer.anonymous_token(self.session_id) if self.session_id else ""

    def check_csrf(self, submitted: str | None) -> bool:
        return self.signer.matches(self.csrf_token, submitted)

    def owns(self, package_name: str) -> bool:
        if self.principal is None:
            return False
        return normalize_part(package_name.partition("/")[0]) in self.principal.namespaces


def wall_now(state: MarketState) -> datetime:
    return datetime.fromtimestamp(state.settings.wall_clock(), UTC)


def session_ttl(state: MarketState) -> timedelta:
    return timedelta(seconds=state.settings.web_session_ttl_s)


def visitor(request: Request) -> Visitor:
    """Read the cookie's session id and look its session up (sync: call off the loop)."""
    state = get_state(request)
    session_id = read_session_id(request.cookies.get(SESSION_COOKIE))
    session = None
    if session_id is not None:
        session = state.registry.web_session(session_id, wall_now(state))
    return Visitor(state, signer_for(request), session_id, session)


def set_session(request: Request, response: Response, session_id: str) -> None:
    """Give the browser `session_id`, for as long as a server-side session lives."""
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(get_state(request).settings.web_session_ttl_s),
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=is_https(request)
    )


def render(
    who: Visitor, template: str, status: int = 200, headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    values.setdefault("viewer", who.principal)
    values.setdefault("csrf_token", who.csrf_token)
    html = template_env().get_template(template).render(**values)
    response = HTMLResponse(html, status_code=status, headers=headers)
    # Pages may show the visitor's own name and forms: never let a shared cache keep them.
    response.headers["cache-control"] = "no-store" if who.principal else "no-cache"
    return response


def error_page(
    who: Visitor, status: int, title: str, detail: str, back: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return render(who, "error.html", status, headers, title=title, detail=detail, back=back)


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(next_path, safe='/')}", status_code=303)


def domain_error_page(who: Visitor, exc: AgentFactoryError, back: str | None = None) -> Response:
    """The HTML twin of the API's problem documents, for the same errors."""
    if isinstance(exc, reg.NotFound):
        return error_page(who, 404, "Not found", str(exc), back)
    if isinstance(exc, reg.AuthenticationError):
        return login_redirect(back or "/")
    if isinstance(exc, reg.PermissionDenied):
        return error_page(who, 403, "Not allowed", str(exc), back)
    if isinstance(exc, RateLimited):
        return error_page(
            who, 429, "Too many requests", str(exc), back, {"Retry-After": str(exc.retry_after)}
        )
    if isinstance(exc, reg.InvalidReview | reg.InvalidQuery | reg.InvalidName):
        return error_page(who, 422, "Invalid input", str(exc), back)
    return error_page(who, 400, "Request refused", str(exc), back)


def safe_next(value: str | None) -> str:
    """A local path to return to after signing in; anything else (other hosts, `//x`,
    `/\\x`, schemes) becomes `/`, so the login form is no open redirect."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ch in value for ch in "\r\n\t\\") or len(value) > 500:
        return "/"
    return value

"""What every web handler shares: the Jinja environment, the visitor's session, rendering,
and turning domain errors into HTML error pages.

Invariants: templates are compiled once per process (one cached `Environment` with autoescape on
for every template and `auto_reload` off); user content reaches a template only as a value, never
as template source. The signed-in visitor is re-authenticated against the registry on every
request from the token in the session cookie, so a revoked token signs the visitor out at once.
Error pages never echo a traceback: the domain error's own one-line message is enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.errors import AgentFactoryError
from marketplace.server.api.deps import MarketState, get_state
from marketplace.server.ratelimit import RateLimited
from marketplace.server.web.security import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    Session,
    SessionSigner,
    load_or_create_secret,
)
from marketplace.server.web.views import package_url, plural, star_glyphs
from registry import errors as reg
from registry.names import normalize_part
from registry.schemas import Principal

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


def signer_for(request: Request) -> SessionSigner:
    """The app's session signer, created on first use from the secret kept in the home."""
    app_state = request.app.state
    signer: SessionSigner | None = getattr(app_state, "web_signer", None)
    if signer is None:
        signer = SessionSigner(load_or_create_secret(get_state(request).settings.home))
        app_state.web_signer = signer
    return signer


@dataclass(frozen=True)
class Visitor:
    """One request's view of who is browsing."""

    state: MarketState
    signer: SessionSigner
    session: Session | None
    principal: Principal | None

    @property
    def csrf_token(self) -> str:
        return self.signer.csrf_token(self.session) if self.session else ""

    def owns(self, package_name: str) -> bool:
        if self.principal is None:
            return False
        return normalize_part(package_name.partition("/")[0]) in self.principal.namespaces


def visitor(request: Request) -> Visitor:
    """Read and verify the session cookie; authenticate its token (sync: call off the loop)."""
    state = get_state(request)
    signer = signer_for(request)
    session = signer.loads(request.cookies.get(SESSION_COOKIE))
    principal = None
    if session is not None and session.token:
        try:
            principal = state.registry.authenticate(session.token)
        except reg.AuthenticationError:
            principal = None
    return Visitor(state, signer, session, principal)


def set_session(request: Request, response: Response, signer: SessionSigner, s: Session) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        signer.dumps(s),
        max_age=SESSION_MAX_AGE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


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

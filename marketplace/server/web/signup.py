"""Signing up on the website: `GET /signup` shows the form, `POST /signup` creates the
publisher (and its namespace) exactly as `POST /api/v1/publishers` does.

Invariants, in the order they are checked:
1. the CSRF token of the form is the one issued to the browser's (anonymous) session, else 403
   and nothing else is looked at;
2. the sign-up budget of the client's address is spent (`register_limiter`, keyed by
   `rate_key(client_address(...))`, the very bucket the API's registration spends), else 429;
3. the registry's own rules (name, namespace, look-alikes, reserved names) refuse with the form
   shown again and the error, nothing stored.
On success the browser is signed in with a fresh server-side session and the page shows the new
API token exactly once, with a copy button: the answer is `Cache-Control: no-store`, the token is
never put in a URL, a cookie or a redirect, and the registry keeps only its hash, so reloading
the page can never show it again (a resubmitted form is refused: the name is taken).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from core.errors import AgentFactoryError
from marketplace.server.client_address import client_address, rate_key
from marketplace.server.ratelimit import RateLimited
from marketplace.server.web.context import (
    Visitor,
    error_page,
    render,
    session_ttl,
    set_session,
    visitor,
    wall_now,
)
from marketplace.server.web.security import new_session_id
from registry import errors as reg
from registry.schemas import PublisherPublic

FIELD_LIMIT = 320


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip()[:FIELD_LIMIT] if isinstance(value, str) else ""


async def signup_form(request: Request) -> Response:
    who = await run_in_threadpool(visitor, request)
    fresh = who.session_id is None
    if fresh:
        who = Visitor(who.state, who.signer, new_session_id(), None)
    response = render(who, "signup.html", error=None, values={})
    if fresh:
        assert who.session_id is not None
        set_session(request, response, who.session_id)
    return response


def _register(
    who: Visitor, name: str, namespace: str, email: str
) -> tuple[PublisherPublic, str, str]:
    """The new publisher, its token, and a session id signing the browser in with it."""
    registry = who.state.registry
    publisher, token = registry.register_publisher(name, namespace or name, email or None)
    session_id, _ = registry.open_web_session(token, session_ttl(who.state), wall_now(who.state))
    if who.session is not None and who.session_id is not None:
        registry.close_web_session(who.session_id)
    return publisher, token, session_id


async def signup(request: Request) -> Response:
    form = await request.form()
    who = await run_in_threadpool(visitor, request)
    if not who.check_csrf(_field(form, "csrf_token")):
        return error_page(
            who, 403, "Form expired",
            "This form was not issued to your session (it expired, or another site sent it). "
            "Reload the page and try again.",
        )
    values = {k: _field(form, k) for k in ("name", "namespace", "email")}
    try:
        who.state.register_limiter.acquire(rate_key(client_address(request)))
        publisher, token, session_id = await run_in_threadpool(
            _register, who, values["name"], values["namespace"], values["email"]
        )
    except RateLimited as exc:
        return render(who, "signup.html", 429, {"Retry-After": str(exc.retry_after)},
                      error=f"Too many sign-ups from your address: {exc}", values=values)
    except (reg.InvalidName, reg.ReservedName, reg.LookalikeName, reg.Conflict) as exc:
        status = 409 if isinstance(exc, reg.Conflict | reg.LookalikeName) else 422
        return render(who, "signup.html", status, error=str(exc), values=values)
    except AgentFactoryError as exc:
        return render(who, "signup.html", 400, error=str(exc), values=values)
    signed_in = await run_in_threadpool(visitor_with, request, who, session_id)
    response = render(signed_in, "signup_done.html", 201, publisher=publisher, token=token)
    response.headers["cache-control"] = "no-store"
    set_session(request, response, session_id)
    return response


def visitor_with(request: Request, who: Visitor, session_id: str) -> Visitor:
    """`who`, now signed in with `session_id` (so the page greets the new account)."""
    session = who.state.registry.web_session(session_id, wall_now(who.state))
    return Visitor(who.state, who.signer, session_id, session)


def add_signup_routes(router: APIRouter) -> None:
    router.add_api_route("/signup", signup_form, methods=["GET"])
    router.add_api_route("/signup", signup, methods=["POST"])

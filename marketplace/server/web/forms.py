"""The web forms: sign in, sign out, rate/review a package, reply to a review.

Invariants, checked in this order on every POST:
1. the CSRF token in the form is the one issued to the cookie's session (403 otherwise, before
   anything else is looked at, so a forged cross-site post learns nothing);
2. writes need a live signed-in session (else a redirect to sign in);
3. the session's token scope and the account's write budget are enforced exactly as the JSON
   API does (same `review` scope, same limiter, same account key), and the package's cached API
   responses are invalidated after the write, so the API and the pages never disagree for
   longer than a request.
Successful posts answer 303 See Other (post/redirect/get), so a reload never re-submits.
Signing in opens a server-side session under a fresh id (no session fixation) and ends the one
the browser had; the token itself goes no further than that call. Signing out deletes the
session on the server, then drops the cookie.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from core.errors import AgentFactoryError
from marketplace.server.ratelimit import account_key
from marketplace.server.web.context import (
    Visitor,
    clear_session,
    domain_error_page,
    error_page,
    login_redirect,
    render,
    safe_next,
    session_ttl,
    set_session,
    visitor,
    wall_now,
)
from marketplace.server.web.security import new_session_id
from marketplace.server.web.views import package_url
from registry import errors as reg
from registry.names import normalize_name

MAX_FIELD = 20_000


def _field(form: FormData, name: str, limit: int = MAX_FIELD) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _csrf_refused(who: Visitor) -> Response:
    return error_page(
        who, 403, "Form expired",
        "This form was not issued to your session (it expired, or another site sent it). "
        "Reload the page and try again.",
    )


async def login_form(request: Request) -> Response:
    who = await run_in_threadpool(visitor, request)
    fresh = who.session_id is None  # no cookie, or not one of ours: start an anonymous one
    if fresh:
        who = Visitor(who.state, who.signer, new_session_id(), None)
    next_path = safe_next(request.query_params.get("next"))
    response = render(who, "login.html", next=next_path, error=None)
    if fresh:
        assert who.session_id is not None
        set_session(request, response, who.session_id)
    return response


def _open_session(who: Visitor, token: str) -> str:
    """A new server-side session for `token` (the browser's old one, if any, ends)."""
    session_id, _ = who.state.registry.open_web_session(
        token, session_ttl(who.state), wall_now(who.state)
    )
    if who.session is not None and who.session_id is not None:
        who.state.registry.close_web_session(who.session_id)
    return session_id


async def login(request: Request) -> Response:
    form = await request.form()
    who = await run_in_threadpool(visitor, request)
    if not who.check_csrf(_field(form, "csrf_token", 200)):
        return _csrf_refused(who)
    next_path = safe_next(_field(form, "next", 600))
    token = _field(form, "token", 500).strip()
    try:
        # A fresh id: an id planted before sign-in is worthless after it.
        session_id = await run_in_threadpool(_open_session, who, token)
    except reg.AuthenticationError:
        return render(
            who, "login.html", 401, next=next_path,
            error="That token is not valid (it may have been revoked). Check it and try again.",
        )
    response = RedirectResponse(next_path, status_code=303)
    set_session(request, response, session_id)
    return response


async def logout(request: Request) -> Response:
    form = await request.form()
    who = await run_in_threadpool(visitor, request)
    if not who.check_csrf(_field(form, "csrf_token", 200)):
        return _csrf_refused(who)
    if who.session is not None and who.session_id is not None:
        await run_in_threadpool(who.state.registry.close_web_session, who.session_id)
    response = RedirectResponse("/", status_code=303)
    clear_session(request, response)
    return response


def _rate(who: Visitor, full: str, stars: int, title: str, body: str) -> str:
    """Scope, budget, write, invalidate; the canonical package name for the redirect."""
    principal = who.principal
    assert principal is not None
    if "review" not in principal.scopes and "admin" not in principal.scopes:
        raise reg.PermissionDenied("this token lacks the 'review' scope")
    who.state.review_limiter.acquire(account_key(principal))
    review = who.state.registry.rate(principal, full, stars, title=title, body=body)
    who.state.cache.invalidate(normalize_name(review.package))
    return review.package


async def submit_review(namespace: str, name: str, request: Request) -> Response:
    form = await request.form()
    who = await run_in_threadpool(visitor, request)
    back = package_url(f"{namespace}/{name}")
    if not who.check_csrf(_field(form, "csrf_token", 200)):
        return _csrf_refused(who)
    if who.principal is None:
        return login_redirect(back)
    try:
        stars = int(_field(form, "stars", 3))
    except ValueError:
        stars = 0
    if not 1 <= stars <= 5:
        return error_page(who, 422, "Invalid input", "Choose between 1 and 5 stars.", back)
    title = _field(form, "title").strip()
    body = _field(form, "body").strip()
    try:
        canonical = await run_in_threadpool(_rate, who, f"{namespace}/{name}", stars, title, body)
    except AgentFactoryError as exc:
        return domain_error_page(who, exc, back)
    return RedirectResponse(f"{package_url(canonical)}?done=rated#reviews", status_code=303)


def _reply(who: Visitor, review_id: int, text: str) -> str:
    principal = who.principal
    assert principal is not None
    if "review" not in principal.scopes and "admin" not in principal.scopes:
        raise reg.PermissionDenied("this token lacks the 'review' scope")
    who.state.review_limiter.acquire(account_key(principal))
    review = who.state.registry.reply(principal, review_id, text)
    who.state.cache.invalidate(normalize_name(review.package))
    return review.package


async def submit_reply(review_id: int, request: Request) -> Response:
    form = await request.form()
    who = await run_in_threadpool(visitor, request)
    if not who.check_csrf(_field(form, "csrf_token", 200)):
        return _csrf_refused(who)
    if who.principal is None:
        return login_redirect("/")
    text = _field(form, "text").strip()
    if not text:
        return error_page(who, 422, "Invalid input", "A reply cannot be empty.")
    try:
        canonical = await run_in_threadpool(_reply, who, review_id, text)
    except AgentFactoryError as exc:
        return domain_error_page(who, exc)
    return RedirectResponse(
        f"{package_url(canonical)}?done=replied#review-{review_id}", status_code=303
    )


def add_form_routes(router: APIRouter) -> None:
    router.add_api_route("/login", login_form, methods=["GET"])
    router.add_api_route("/login", login, methods=["POST"])
    router.add_api_route("/logout", logout, methods=["POST"])
    router.add_api_route("/packages/{namespace}/{name}/reviews", submit_review, methods=["POST"])
    router.add_api_route("/reviews/{review_id}/reply", submit_reply, methods=["POST"])

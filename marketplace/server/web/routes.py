"""The browsing pages (`/`, `/search`, `/packages/{ns}/{name}`, `/publishers/{name}`) and
`mount_web(app)`, which wires the pages, the forms, the static files and the security headers
into the marketplace app.

Invariants: every page makes a fixed, small number of registry calls whatever the data size
(the home page three limited searches, the package page six reads), so page time does not grow
with the catalogue or the number of reviews. Query parameters from the address bar are parsed
leniently (a bad page number shows page 1, an unknown sort falls back to relevance): a visitor
who edits a URL gets a page, not a validation error. Handlers are sync functions, which FastAPI
runs in its thread pool, because the registry is synchronous.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import AgentFactoryError
from marketplace.server.api.problems import http_error_handler
from marketplace.server.web import forms, signup
from marketplace.server.web.apidocs import mount_api_docs
from marketplace.server.web.context import (
    STATIC_DIR,
    domain_error_page,
    error_page,
    render,
    visitor,
)
from marketplace.server.web.markdown import render_markdown
from marketplace.server.web.security import SecurityHeadersMiddleware
from marketplace.server.web.views import (
    SORT_CHOICES,
    SORTS,
    HomeSection,
    PackagePage,
    Pages,
    histogram_rows,
    latest_release,
    package_url,
    signature_view,
    vetting_view,
)
from registry.schemas import PackageSummary

HOME_LIMIT = 6
HOME_SECTIONS = (
    ("rating", "Top rated"), ("downloads", "Most downloaded"), ("recent", "Recently updated")
)
SEARCH_PER_PAGE = 20
REVIEWS_PER_PAGE = 10
MAX_PAGE = 10_000
# The publisher page lists at most this many packages (pages of 100 searched per namespace).
PUBLISHER_MAX_PAGES = 5


def _int_param(value: str | None, default: int = 1) -> int:
    try:
        number = int(value or default)
    except ValueError:
        return default
    return max(1, min(MAX_PAGE, number))


def _text_param(value: str | None, limit: int = 200) -> str:
    return (value or "").strip()[:limit]


def home(request: Request) -> Response:
    who = visitor(request)
    registry = who.state.registry
    sections = [
        HomeSection(key, title, registry.search("", sort=key, per_page=HOME_LIMIT).items)
        for key, title in HOME_SECTIONS
    ]
    return render(who, "home.html", sections=sections)


def search(request: Request) -> Response:
    who = visitor(request)
    params = request.query_params
    query = _text_param(params.get("q"))
    capability = _text_param(params.get("capability"), 100)
    tool = _text_param(params.get("tool"), 100)
    sort = params.get("sort") or "relevance"
    sort = sort if sort in SORTS else "relevance"
    page = _int_param(params.get("page"))
    try:
        result = who.state.registry.search(
            query, sort=sort, page=page, per_page=SEARCH_PER_PAGE,
            capability=capability or None, tool=tool or None,
        )
    except AgentFactoryError as exc:
        return domain_error_page(who, exc, "/search")
    pages = Pages.build(
        "/search", {"q": query, "capability": capability, "tool": tool,
                    "sort": sort if sort != "relevance" else ""},
        page, SEARCH_PER_PAGE, result.total,
    )
    return render(
        who, "search.html", query=query, capability=capability, tool=tool, sort=sort,
        sorts=SORT_CHOICES, result=result, pages=pages,
    )


def package_page(namespace: str, name: str, request: Request) -> Response:
    who = visitor(request)
    registry = who.state.registry
    full = f"{namespace}/{name}"
    page = _int_param(request.query_params.get("page"))
    try:
        pkg = registry.package(full)
        releases = registry.releases(full)
        reviews = registry.reviews(full, page=page, per_page=REVIEWS_PER_PAGE, verified=True)
        unverified = registry.reviews(full, per_page=REVIEWS_PER_PAGE, verified=False)
        keys = registry.keys(pkg.publisher)
    except AgentFactoryError as exc:
        return domain_error_page(who, exc)
    latest = latest_release(pkg, releases)
    view = PackagePage(
        pkg=pkg,
        readme_html=render_markdown(pkg.readme),
        install_command=f"agentfactory install {pkg.name}",
        releases=list(reversed(releases)),  # newest first
        permissions=list(latest.permissions) if latest else [],
        signature=signature_view(latest, keys),
        vetting=vetting_view(latest),
        histogram=histogram_rows(pkg.rating),
        reviews=reviews,
        unverified=unverified,
        review_pages=Pages.build(
            package_url(pkg.name), {}, reviews.page, REVIEWS_PER_PAGE, reviews.total, "#reviews"
        ),
    )
    notice = {"rated": "Thank you: your rating was saved.",
              "replied": "Your reply was published."}.get(request.query_params.get("done", ""))
    return render(
        who, "package.html", is_owner=who.owns(pkg.name), notice=notice,
        **{field: getattr(view, field) for field in view.__dataclass_fields__},
    )


def publisher_page(publisher: str, request: Request) -> Response:
    who = visitor(request)
    registry = who.state.registry
    try:
        record = registry.publisher(publisher)
    except AgentFactoryError as exc:
        return domain_error_page(who, exc)
    found: dict[str, PackageSummary] = {}
    for page in range(1, PUBLISHER_MAX_PAGES + 1):
        result = registry.search(publisher=record.name, sort="rating", page=page, per_page=100)
        found.update((item.name, item) for item in result.items)
        if page * result.per_page >= result.total:
            break
    packages = sorted(
        found.values(), key=lambda p: (not p.rating_count, -p.rating_bayesian, p.name)
    )
    rated = [p for p in packages if p.rating_count]
    count = sum(p.rating_count for p in rated)
    mean = (
        sum((p.rating_mean or 0.0) * p.rating_count for p in rated) / count if count else None
    )
    return render(
        who, "publisher.html", publisher=record, packages=packages, rating_count=count,
        rating_mean=mean,
    )


def make_web_router() -> APIRouter:
    """Every HTML route: pages (GET) and forms (POST, CSRF-checked)."""
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    router.add_api_route("/", home, methods=["GET"])
    router.add_api_route("/search", search, methods=["GET"])
    router.add_api_route("/packages/{namespace}/{name}", package_page, methods=["GET"])
    router.add_api_route("/publishers/{publisher}", publisher_page, methods=["GET"])
    forms.add_form_routes(router)
    signup.add_signup_routes(router)
    return router


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path in ("/healthz", "/metrics"):
        return False
    return "text/html" in request.headers.get("accept", "")


async def _not_found_handler(request: Request, exc: Exception) -> Response:
    """Browsers get an HTML error page; API clients keep their problem documents."""
    assert isinstance(exc, StarletteHTTPException)
    if not _wants_html(request) or exc.status_code not in (404, 405):
        return await http_error_handler(request, exc)
    who = await run_in_threadpool(visitor, request)
    titles: dict[int, tuple[str, str]] = {
        404: ("Page not found", "There is no page at this address."),
        405: ("Not allowed", "This address does not accept that kind of request."),
    }
    title, detail = titles[exc.status_code]
    return error_page(who, exc.status_code, title, detail)


def mount_web(app: FastAPI) -> None:
    """Add the web pages to `app`: router, API docs, `/static`, security headers, HTML 404
    pages."""
    app.include_router(make_web_router())
    mount_api_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="web-static")
    app.add_exception_handler(StarletteHTTPException, _not_found_handler)
    app.add_middleware(SecurityHeadersMiddleware)
    app.state.web_mounted = True

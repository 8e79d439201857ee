"""The interactive API documentation (Swagger UI), served entirely from this server.

Invariants: the page at `/docs` and `/api/v1/docs` references only same-origin URLs: Swagger
UI's script, stylesheet and icon under `/static/swagger-ui/` (the files shipped inside the
`fastapi-offline` package, so the page works with no network), the initializer
`/static/api-docs.js`, and the OpenAPI document at `/api/v1/openapi.json`. There is no inline
script or style, so the page carries the site's Content-Security-Policy like every other page.

Why Swagger UI from `fastapi-offline`: it ships a current Swagger UI 5 build, which reads the
OpenAPI 3.1 document FastAPI writes (the `swagger-ui-bundle` package stops at Swagger UI 4,
which refuses 3.1), and Swagger UI keeps "Try it out" for the JSON API (ReDoc only reads, and it
injects `<style>` elements that the CSP forbids).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from marketplace.server.web.context import template_env

DOCS_PATHS = ("/docs", "/api/v1/docs")
OPENAPI_URL = "/api/v1/openapi.json"
ASSETS_URL = "/static/swagger-ui"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))


def api_docs(request: Request) -> HTMLResponse:
    html = template_env().get_template("api_docs.html").render(
        openapi_url=request.app.openapi_url or OPENAPI_URL, assets=ASSETS_URL,
        title=request.app.title,
    )
    return HTMLResponse(html, headers={"cache-control": "no-cache"})


def mount_api_docs(app: FastAPI) -> None:
    """Add the docs pages and their assets; call before `/static` is mounted (it is a prefix)."""
    router = APIRouter(include_in_schema=False)
    for path in DOCS_PATHS:
        router.add_api_route(path, api_docs, methods=["GET"], response_class=HTMLResponse)
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="swagger-ui")

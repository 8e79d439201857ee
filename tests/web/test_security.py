"""Security headers on every response, session ids, anonymous CSRF tokens and the secret file."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from marketplace.server.web.security import (
    CONTENT_SECURITY_POLICY,
    CsrfSigner,
    load_or_create_secret,
    new_session_id,
    read_session_id,
)


def test_pages_carry_a_strict_csp_and_hardening_headers(client: TestClient) -> None:
    for path in ("/", "/search", "/login", "/no-such-page", "/static/style.css"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert csp == CONTENT_SECURITY_POLICY, path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
    for directive in ("default-src 'none'", "script-src 'self'", "frame-ancestors 'none'",
                      "base-uri 'none'", "form-action 'self'"):
        assert directive in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY


def test_api_responses_get_the_headers(client: TestClient) -> None:
    api = client.get("/healthz", headers={"accept": "application/json"})
    assert api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png",
               ".json": "application/json"}


@pytest.mark.parametrize("path", ["/docs", "/api/v1/docs"])
def test_the_api_docs_page_uses_only_local_assets_under_the_csp(
    client: TestClient, path: str
) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) is None  # no inline script
    assert " style=" not in page.text and "<style" not in page.text
    urls = re.findall(r'(?:src|href|data-openapi-url)="([^"]*)"', page.text)
    assert "/api/v1/openapi.json" in urls
    assert {"/static/api-docs.js", "/static/swagger-ui/swagger-ui-bundle.js",
            "/static/swagger-ui/swagger-ui.css"} <= set(urls)
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url  # same origin only
        asset = client.get(url, headers={"accept": "*/*"})
        assert asset.status_code == 200, url
        expected = ASSET_TYPES[url[url.rfind("."):]]
        assert asset.headers["content-type"].startswith(expected), (url, asset.headers)
    spec = client.get("/api/v1/openapi.json").json()
    assert spec["info"]["title"] == "Agent Factory marketplace"


def test_pages_contain_no_inline_script_or_style(client: TestClient) -> None:
    for path in ("/", "/search", "/login"):
        html = client.get(path).text
        assert "<script>" not in html and " style=" not in html and "<style" not in html
        assert " onclick=" not in html


def test_session_ids_are_256_random_bits_and_other_shapes_are_ignored() -> None:
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100
    for session_id in ids:
        assert len(session_id) == 43 and read_session_id(session_id) == session_id
    one = next(iter(ids))
    for bad in (None, "", "garbage", one + "A", one[:-1], one[:-1] + ".", one[:-1] + "\n",
                "e30." + one):
        assert read_session_id(bad) is None, bad


def test_anonymous_csrf_tokens_are_bound_to_the_session_id_and_the_secret() -> None:
    signer = CsrfSigner(b"k" * 32)
    one, two = new_session_id(), new_session_id()
    assert signer.matches(signer.anonymous_token(one), signer.anonymous_token(one))
    assert not signer.matches(signer.anonymous_token(two), signer.anonymous_token(one))
    assert not signer.matches(CsrfSigner(b"x" * 32).anonymous_token(one),
                              signer.anonymous_token(one))
    assert not signer.matches(signer.anonymous_token(one), "")
    assert not signer.matches("", "")
    assert not signer.matches(signer.anonymous_token(one), "\udc80")  # no crash on surrogates


def test_the_session_secret_is_private_and_stable(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    assert load_or_create_secret(tmp_path) == first and len(first) == 32
    mode = stat.S_IMODE((tmp_path / "web-session.key").stat().st_mode)
    assert mode == 0o600

"""Signing up on the website: the form, CSRF, the per-address limit shared with the API, the
token shown once, and the new account signed in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from marketplace.server.app import create_app
from marketplace.server.settings import RateLimit, ServerSettings
from registry.service import Registry
from tests.web.conftest import csrf_of


def _post(client: TestClient, **fields: str) -> Any:
    page = client.get("/signup")
    assert page.status_code == 200 and 'action="/signup"' in page.text
    data = {"csrf_token": csrf_of(page.text), **fields}
    return client.post("/signup", data=data, follow_redirects=False)


def test_sign_up_shows_the_token_once_and_signs_in(
    client: TestClient, registry: Registry
) -> None:
    assert 'href="/signup"' in client.get("/").text
    done = _post(client, name="newbie", namespace="newbie-tools")
    assert done.status_code == 201, done.text
    assert done.headers["cache-control"] == "no-store"
    token = done.text.split('<code id="new-token">')[1].split("</code>")[0]
    assert token.startswith("afr_") and "shown only once" in done.text
    assert 'data-copy-target="new-token"' in done.text
    assert registry.authenticate(token).name == "newbie"
    assert registry.publisher("newbie").namespaces == ["newbie-tools"]
    # Signed in as the new account; no later page shows the token again.
    home = client.get("/").text
    assert "Signed in as" in home and "newbie" in home and token not in home
    assert token not in client.get("/signup").text


def test_sign_up_refuses_a_forged_form_and_bad_names(
    client: TestClient, registry: Registry
) -> None:
    client.get("/signup")
    forged = client.post("/signup", data={"name": "mallory"}, follow_redirects=False)
    assert forged.status_code == 403
    bad = _post(client, name="Not A Name!")
    assert bad.status_code == 422 and "publisher name" in bad.text
    assert 'value="Not A Name!"' in bad.text  # the form keeps what was typed
    assert _post(client, name="taken").status_code == 201
    client.cookies.clear()
    again = _post(client, name="taken")
    assert again.status_code == 409 and "already exists" in again.text
    assert registry.search(publisher="mallory").total == 0


def test_sign_ups_are_limited_per_address_like_the_api(tmp_path: Path) -> None:
    settings = ServerSettings(home=tmp_path / "home", bootstrap=False,
                              register_rate=RateLimit(1, 1 / 3600))
    with TestClient(create_app(settings), headers={"accept": "text/html"}) as client:
        assert _post(client, name="first").status_code == 201
        client.cookies.clear()
        limited = _post(client, name="second")
        assert limited.status_code == 429 and "Too many sign-ups" in limited.text
        assert int(limited.headers["retry-after"]) > 0
        # The API's registration spends the same bucket.
        api = client.post("/api/v1/publishers", json={"name": "third"},
                          headers={"accept": "application/json"})
        assert api.status_code == 429
        registry: Registry = client.app.state.market.registry  # type: ignore[attr-defined]
        assert [p for p in ("second", "third") if _exists(registry, p)] == []


def _exists(registry: Registry, name: str) -> bool:
    from registry.errors import NotFound

    try:
        registry.publisher(name)
    except NotFound:
        return False
    return True


def test_package_page_shows_unverified_reviews_apart_and_explains_the_rank(
    client: TestClient, registry: Registry
) -> None:
    from tests.web.conftest import Seeder

    seed = Seeder(registry)
    seed.package(seed.publisher("acme"), "acme/tool")
    seed.review("acme/tool", "user", 5, "Great")  # downloaded first: verified
    stranger = seed.reviewer("stranger")
    registry.rate(stranger.principal, "acme/tool", 1, title="Never ran it")
    html = client.get("/packages/acme/tool").text
    verified, apart = html.split('id="unverified"')
    assert "Great" in verified and "verified download" in verified
    assert "Never ran it" in apart and "not verified" in apart
    assert "Unverified reviews (1)" in apart
    assert "5.0</span> / 5" in verified and "from 1 verified rating" in verified
    assert "ranked as" in verified and "site average" in verified

"""Browser sessions live on the server: the cookie holds a random id, never the API token.

Through the real app and the real sign-in form: what the cookie and the pages carry, forged,
expired, replaced and signed-out ids, and the Secure flag. Expiry is driven by the app's
injected wall clock; nothing sleeps.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from marketplace.server.app import create_app
from marketplace.server.settings import ServerSettings, parse_networks
from marketplace.server.web.security import SESSION_COOKIE, new_session_id
from registry.accounts import MAX_WEB_SESSIONS
from registry.service import Registry
from tests.web.conftest import Seeder, csrf_of, sign_in

TTL = 3600.0


class WallClock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall() -> WallClock:
    return WallClock()


@pytest.fixture
def browser(tmp_path: Path, wall: WallClock) -> Iterator[TestClient]:
    settings = ServerSettings(home=tmp_path / "home", bootstrap=False, wall_clock=wall,
                              web_session_ttl_s=TTL,
                              trusted_proxies=parse_networks("10.0.0.0/8"))
    with TestClient(create_app(settings), headers={"accept": "text/html"}) as client:
        yield client


def registry_of(client: TestClient) -> Registry:
    app: Any = client.app
    registry: Registry = app.state.market.registry
    return registry


@pytest.fixture
def seed(browser: TestClient) -> Seeder:
    return Seeder(registry_of(browser))


def signed_in(client: TestClient) -> bool:
    return "Signed in as" in client.get("/").text


def session_rows(client: TestClient) -> list[Any]:
    with registry_of(client).engine.connect() as conn:
        return list(conn.execute(text("SELECT * FROM web_session")).mappings())


def decodings(value: str) -> list[bytes]:
    """`value` as it is, and every way it might decode (base64 url/std, with padding)."""
    out = [value.encode()]
    for part in [value, *value.split(".")]:
        padded = part + "=" * (-len(part) % 4)
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            with contextlib.suppress(binascii.Error, ValueError):
                out.append(decode(padded))
    return out


def test_the_cookie_and_the_pages_never_carry_the_token(
    browser: TestClient, seed: Seeder
) -> None:
    ada = seed.reviewer("ada")
    seed.package(seed.publisher("acme"), "acme/tool")
    answer = sign_in(browser, ada.token)
    assert answer.status_code == 303
    cookie = browser.cookies[SESSION_COOKIE]
    assert len(cookie) == 43  # 256 random bits, url-safe base64
    secret = ada.token.removeprefix("afr_")
    for decoded in decodings(cookie):
        assert ada.token.encode() not in decoded and secret.encode() not in decoded
    assert ada.token not in answer.headers["set-cookie"]
    for path in ("/", "/login", "/packages/acme/tool", "/publishers/ada", "/search?q=tool"):
        page = browser.get(path)
        assert page.status_code == 200 and ada.token not in page.text and secret not in page.text
        assert cookie not in page.text
    assert signed_in(browser)
    # At rest, only the id's sha256 is stored: the cookie value is nowhere in the table.
    (row,) = session_rows(browser)
    assert row["id_hash"] == hashlib.sha256(cookie.encode()).hexdigest()
    assert cookie not in {str(v) for v in row.values()}
    assert ada.token not in {str(v) for v in row.values()}


def test_forged_and_foreign_session_ids_sign_nobody_in(
    browser: TestClient, seed: Seeder
) -> None:
    ada = seed.reviewer("ada")
    sign_in(browser, ada.token)
    real = browser.cookies[SESSION_COOKIE]
    forgeries = [
        new_session_id(),  # well-formed, never issued
        real[:-1] + ("A" if real[-1] != "A" else "B"),  # one character off
        ada.token,  # the old design's secret: a token in the cookie signs nobody in
        hashlib.sha256(real.encode()).hexdigest(),  # what the database holds
        real + ".sig", real.lower(), "", "x" * 5000,
    ]
    for forged in forgeries:
        browser.cookies.clear()
        browser.cookies.set(SESSION_COOKIE, forged)
        assert not signed_in(browser), forged
    browser.cookies.clear()
    browser.cookies.set(SESSION_COOKIE, real)
    assert signed_in(browser)


def test_an_expired_session_is_refused_and_cannot_post(
    browser: TestClient, seed: Seeder, wall: WallClock
) -> None:
    ada = seed.reviewer("ada")
    seed.package(seed.publisher("acme"), "acme/tool")
    answer = sign_in(browser, ada.token)
    assert f"Max-Age={int(TTL)}" in answer.headers["set-cookie"]
    form = browser.get("/packages/acme/tool").text
    wall.now += TTL - 1
    assert signed_in(browser)
    wall.now += 1
    assert not signed_in(browser)
    late = browser.post("/packages/acme/tool/reviews",
                        data={"csrf_token": csrf_of(form), "stars": "5"}, follow_redirects=False)
    assert late.status_code == 403 and "Form expired" in late.text
    assert registry_of(browser).reviews("acme/tool").total == 0
    # Signing in again opens a new session and sweeps the expired row.
    sign_in(browser, ada.token)
    assert signed_in(browser) and len(session_rows(browser)) == 1


def test_sign_out_deletes_the_session_so_a_copied_cookie_is_worthless(
    browser: TestClient, seed: Seeder
) -> None:
    ada = seed.reviewer("ada")
    seed.package(seed.publisher("acme"), "acme/tool")
    sign_in(browser, ada.token)
    stolen = browser.cookies[SESSION_COOKIE]
    form = browser.get("/packages/acme/tool").text
    out = browser.post("/logout", data={"csrf_token": csrf_of(form)}, follow_redirects=False)
    assert out.status_code == 303 and SESSION_COOKIE in out.headers["set-cookie"]
    assert session_rows(browser) == []
    # Replaying the old cookie (as a thief who copied it would) is an anonymous visit.
    browser.cookies.set(SESSION_COOKIE, stolen)
    assert not signed_in(browser)
    replay = browser.post("/packages/acme/tool/reviews",
                          data={"csrf_token": csrf_of(form), "stars": "1"},
                          follow_redirects=False)
    assert replay.status_code == 403
    assert registry_of(browser).reviews("acme/tool").total == 0


def test_signing_in_replaces_the_id_and_ends_the_previous_session(
    browser: TestClient, seed: Seeder
) -> None:
    ada, bob = seed.reviewer("ada"), seed.reviewer("bob")
    browser.get("/login")
    planted = browser.cookies[SESSION_COOKIE]  # an anonymous id, as a fixation attack plants
    sign_in(browser, ada.token)
    first = browser.cookies[SESSION_COOKIE]
    assert first != planted
    sign_in(browser, bob.token)  # a second sign-in in the same browser (switching accounts)
    assert browser.cookies[SESSION_COOKIE] != first
    assert "Signed in as" in browser.get("/").text and "bob" in browser.get("/").text
    assert len(session_rows(browser)) == 1
    for old in (planted, first):
        browser.cookies.clear()
        browser.cookies.set(SESSION_COOKIE, old)
        assert not signed_in(browser)


def test_revoking_the_token_ends_its_sessions_and_accounts_keep_few(
    browser: TestClient, seed: Seeder
) -> None:
    ada = seed.reviewer("ada")
    for _ in range(MAX_WEB_SESSIONS + 5):
        browser.cookies.clear()
        sign_in(browser, ada.token)
    assert len(session_rows(browser)) == MAX_WEB_SESSIONS
    assert signed_in(browser)
    registry_of(browser).revoke_token(ada.principal, ada.principal.token_id)
    assert not signed_in(browser)


@pytest.mark.parametrize(("base_url", "peer", "headers", "secure"), [
    ("http://testserver", "testclient", {}, False),
    ("https://testserver", "testclient", {}, True),
    # A client's own claim to have used https is not believed...
    ("http://testserver", "203.0.113.9", {"X-Forwarded-Proto": "https"}, False),
    ("http://testserver", "203.0.113.9", {"Forwarded": "proto=https"}, False),
    # ...a named proxy's is.
    ("http://testserver", "10.0.0.2", {"X-Forwarded-Proto": "https"}, True),
    ("http://testserver", "10.0.0.2", {"Forwarded": "for=198.51.100.1;proto=https"}, True),
    ("http://testserver", "10.0.0.2", {"X-Forwarded-Proto": "http"}, False),
])
def test_the_cookie_is_httponly_strict_and_secure_over_https(
    browser: TestClient, seed: Seeder, base_url: str, peer: str, headers: dict[str, str],
    secure: bool,
) -> None:
    ada = seed.reviewer("ada")
    client = TestClient(browser.app, base_url=base_url, client=(peer, 5000),
                        headers={"accept": "text/html", **headers})
    page = client.get("/login")
    # The proxy speaks https to the browser, which sends Secure cookies back; this test client
    # speaks http to the app, so it is handed the cookie by hand.
    anonymous = page.cookies[SESSION_COOKIE]
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, anonymous)
    answer = client.post("/login", data={"csrf_token": csrf_of(page.text), "token": ada.token},
                         follow_redirects=False)
    assert answer.status_code == 303
    flags = answer.headers["set-cookie"].lower()
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert ("; secure" in flags) is secure

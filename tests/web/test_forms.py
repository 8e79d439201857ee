"""Signing in and the review/reply forms: CSRF, sessions, scopes, post/redirect/get."""

from __future__ import annotations

from fastapi.testclient import TestClient

from marketplace.server.web.security import SESSION_COOKIE
from registry.service import Registry
from tests.web.conftest import Seeder, csrf_of, sign_in


def test_sign_in_sets_a_strict_httponly_session_and_shows_the_name(
    client: TestClient, seed: Seeder
) -> None:
    bob = seed.reviewer("bob")
    answer = sign_in(client, bob.token, "/search")
    assert answer.status_code == 303 and answer.headers["location"] == "/search"
    cookie = answer.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert bob.token not in client.get("/").text  # the token never appears in a page
    assert "Signed in as" in client.get("/").text


def test_a_bad_token_is_refused_with_a_message(client: TestClient) -> None:
    answer = sign_in(client, "af_not-a-real-token")
    assert answer.status_code == 401
    assert "That token is not valid" in answer.text


def test_login_refuses_a_post_without_the_session_csrf_token(
    client: TestClient, seed: Seeder
) -> None:
    bob = seed.reviewer("bob")
    client.get("/login")
    answer = client.post("/login", data={"csrf_token": "forged", "token": bob.token},
                         follow_redirects=False)
    assert answer.status_code == 403
    assert "Signed in as" not in client.get("/").text


def test_next_cannot_redirect_to_another_site(client: TestClient, seed: Seeder) -> None:
    bob = seed.reviewer("bob")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        answer = sign_in(client, bob.token, target)
        assert answer.headers["location"] == "/", target


def test_review_form_needs_csrf_then_saves_and_updates_the_average(
    client: TestClient, seed: Seeder, registry: Registry
) -> None:
    acme = seed.publisher("acme")
    seed.package(acme, "acme/summarizer")
    seed.review("acme/summarizer", "early", 5)
    carol = seed.reviewer("carol")
    seed.download("acme/summarizer", carol)  # so her review is verified and counts
    sign_in(client, carol.token)
    before = registry.rating("acme/summarizer")
    forged = client.post("/packages/acme/summarizer/reviews",
                         data={"stars": "1", "title": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    assert registry.rating("acme/summarizer").count == before.count

    page = client.get("/packages/acme/summarizer")
    answer = client.post(
        "/packages/acme/summarizer/reviews",
        data={"csrf_token": csrf_of(page.text), "stars": "2", "title": "Meh", "body": "Slow."},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/packages/acme/summarizer?done=rated#reviews"
    after = registry.rating("acme/summarizer")
    assert after.count == before.count + 1 and after.bayesian != before.bayesian
    shown = client.get(answer.headers["location"]).text
    assert "Thank you: your rating was saved." in shown
    assert after.mean is not None
    assert "Slow." in shown and f'<span id="rating-mean">{after.mean:.1f}</span>' in shown
    # the JSON API agrees at once (its cached rating was invalidated by the form)
    api = client.get("/api/v1/packages/acme/summarizer/rating",
                     headers={"accept": "application/json"})
    assert api.json()["count"] == after.count


def test_review_form_rejects_bad_stars_and_anonymous_posts(
    client: TestClient, seed: Seeder, registry: Registry
) -> None:
    seed.package(seed.publisher("acme"), "acme/summarizer")
    page = client.get("/login")
    anonymous = client.post("/packages/acme/summarizer/reviews",
                            data={"csrf_token": csrf_of(page.text), "stars": "5"},
                            follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?next=/packages/acme/summarizer")
    sign_in(client, seed.reviewer("dave").token)
    token = csrf_of(client.get("/packages/acme/summarizer").text)
    for stars in ("0", "6", "many"):
        bad = client.post("/packages/acme/summarizer/reviews",
                          data={"csrf_token": token, "stars": stars}, follow_redirects=False)
        assert bad.status_code == 422, stars
    assert registry.rating("acme/summarizer").count == 0


def test_a_token_without_review_scope_cannot_rate(
    client: TestClient, seed: Seeder, registry: Registry
) -> None:
    acme = seed.publisher("acme")
    seed.package(acme, "acme/summarizer")
    publish_only = registry.create_token(acme.principal, {"publish"})
    sign_in(client, publish_only)
    token = csrf_of(client.get("/packages/acme/summarizer").text)
    answer = client.post("/packages/acme/summarizer/reviews",
                         data={"csrf_token": token, "stars": "5"}, follow_redirects=False)
    assert answer.status_code == 403
    assert registry.rating("acme/summarizer").count == 0


def test_the_owner_replies_and_a_stranger_cannot(
    client: TestClient, seed: Seeder, registry: Registry
) -> None:
    acme = seed.publisher("acme")
    seed.package(acme, "acme/summarizer")
    review_id = seed.review("acme/summarizer", "erin", 2, body="Crashes on empty input")
    sign_in(client, seed.reviewer("frank").token)
    page = client.get("/packages/acme/summarizer").text
    assert "Reply as the publisher" not in page
    refused = client.post(f"/reviews/{review_id}/reply",
                          data={"csrf_token": csrf_of(page), "text": "hijack"},
                          follow_redirects=False)
    assert refused.status_code == 403

    sign_in(client, acme.token)
    page = client.get("/packages/acme/summarizer").text
    assert "Reply as the publisher" in page
    answer = client.post(f"/reviews/{review_id}/reply",
                         data={"csrf_token": csrf_of(page), "text": "Fixed in 1.0.1"},
                         follow_redirects=False)
    assert answer.status_code == 303
    shown = client.get(answer.headers["location"]).text
    assert "Reply from the publisher" in shown and "Fixed in 1.0.1" in shown
    assert "hijack" not in shown


def test_sign_out_needs_csrf_and_ends_the_session(client: TestClient, seed: Seeder) -> None:
    sign_in(client, seed.reviewer("gina").token)
    page = client.get("/").text
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    answer = client.post("/logout", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert answer.status_code == 303
    assert "Signed in as" not in client.get("/").text


def test_a_revoked_token_signs_the_visitor_out(
    client: TestClient, seed: Seeder, registry: Registry
) -> None:
    hank = seed.reviewer("hank")
    sign_in(client, hank.token)
    assert "Signed in as" in client.get("/").text
    registry.revoke_token(hank.principal, hank.principal.token_id)
    assert "Signed in as" not in client.get("/").text


def test_a_tampered_session_cookie_is_ignored(client: TestClient, seed: Seeder) -> None:
    sign_in(client, seed.reviewer("ivy").token)
    value = client.cookies[SESSION_COOKIE]
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, value[:-1] + ("A" if value[-1] != "A" else "B"))
    assert "Signed in as" not in client.get("/").text

"""Reviews over HTTP: rate (create or replace), bounds, reply, flag, delete, and the rating
shown on the package page moving with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.marketplace.conftest import Actor, make_package, register

REVIEWS = "/api/v1/packages/acme/summarizer/reviews"


@pytest.fixture
def published(api: Any, acme: Actor, tmp_path: Path) -> Actor:
    assert acme.publish(make_package(tmp_path), "acme/summarizer", "1.0.0").status_code == 201
    api.get("/api/v1/packages/acme/summarizer")  # warm the detail cache
    return acme


def test_rate_replace_and_rating_on_the_package_page(api: Any, published: Actor) -> None:
    bob = register(api, "bob")
    # bob downloads the version with his token: his review is verified and counts.
    download = "/api/v1/packages/acme/summarizer/versions/1.0.0/download"
    assert api.get(download, headers=bob.auth).status_code == 200
    first = api.put(REVIEWS, json={"stars": 2, "title": "meh"}, headers=bob.auth)
    assert first.status_code == 200, first.text
    assert first.json()["reviewer"] == "bob"
    second = api.put(REVIEWS, json={"stars": 5, "body": "works now"}, headers=bob.auth)
    assert second.json()["stars"] == 5
    page = api.get(REVIEWS).json()
    assert page["total"] == 1 and page["items"][0]["stars"] == 5
    detail = api.get("/api/v1/packages/acme/summarizer").json()
    assert detail["rating"]["count"] == 1 and detail["rating"]["mean"] == 5
    assert api.get("/api/v1/packages/acme/summarizer/rating").json()["histogram"]["5"] == 1


@pytest.mark.parametrize("stars", [0, 6, -1])
def test_stars_outside_1_to_5_are_refused(api: Any, published: Actor, stars: int) -> None:
    response = api.put(REVIEWS, json={"stars": stars}, headers=published.auth)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "body.stars"
    assert api.get(REVIEWS).json()["total"] == 0


def test_review_needs_a_token(api: Any, published: Actor) -> None:
    assert api.put(REVIEWS, json={"stars": 4}).status_code == 401
    assert api.get(REVIEWS).json()["total"] == 0


def test_owner_replies_others_cannot_anyone_flags(api: Any, published: Actor) -> None:
    bob = register(api, "bob")
    review = api.put(REVIEWS, json={"stars": 3}, headers=bob.auth).json()
    url = f"/api/v1/reviews/{review['id']}"
    refused = api.post(f"{url}/reply", json={"text": "mine"}, headers=bob.auth)
    assert refused.status_code == 403
    replied = api.post(f"{url}/reply", json={"text": "thanks"}, headers=published.auth)
    assert replied.status_code == 200 and replied.json()["reply"] == "thanks"
    carol = register(api, "carol")
    flagged = api.post(f"{url}/flag", json={"reason": "spam"}, headers=carol.auth)
    assert flagged.status_code == 200 and flagged.json()["flag_count"] == 1
    assert (
        api.post("/api/v1/reviews/999/flag", json={"reason": "x"}, headers=carol.auth).status_code
        == 404
    )


def test_delete_own_review(api: Any, published: Actor) -> None:
    bob = register(api, "bob")
    api.put(REVIEWS, json={"stars": 1}, headers=bob.auth)
    assert api.delete(REVIEWS, headers=bob.auth).status_code == 204
    assert api.get(REVIEWS).json()["total"] == 0
    assert api.get("/api/v1/packages/acme/summarizer").json()["rating"]["count"] == 0


def test_review_writes_are_rate_limited_per_token(
    make_app: Any, clock: Any, tmp_path: Path
) -> None:
    from marketplace.server.settings import RateLimit

    api = make_app(review_rate=RateLimit(2, 1 / 30))
    acme = register(api, "acme")
    acme.publish(make_package(tmp_path), "acme/summarizer", "1.0.0")
    bob, carol = register(api, "bob"), register(api, "carol")
    assert api.put(REVIEWS, json={"stars": 4}, headers=bob.auth).status_code == 200
    assert api.put(REVIEWS, json={"stars": 5}, headers=bob.auth).status_code == 200
    limited = api.put(REVIEWS, json={"stars": 1}, headers=bob.auth)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "30"
    assert limited.json()["code"] == "RateLimited"
    # The store kept the last accepted review; another token has its own bucket.
    assert api.get(REVIEWS).json()["items"][0]["stars"] == 5
    assert api.put(REVIEWS, json={"stars": 3}, headers=carol.auth).status_code == 200
    clock.advance(30)
    assert api.put(REVIEWS, json={"stars": 1}, headers=bob.auth).status_code == 200

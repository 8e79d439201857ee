"""Cached package details served before routing: same answer as the endpoint, never stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.marketplace.conftest import Actor, make_package, register
from tests.marketplace.test_metrics import scrape, value

DETAIL = "/api/v1/packages/acme/summarizer"


def published(api: Any, acme: Actor, tmp_path: Path) -> None:
    archive = make_package(tmp_path, "acme/summarizer", "1.0.0")
    assert acme.publish(archive, "acme/summarizer", "1.0.0").status_code == 201


def test_a_cache_hit_answers_exactly_what_the_endpoint_answered(
    api: Any, acme: Actor, tmp_path: Path
) -> None:
    published(api, acme, tmp_path)
    hits_before = api.get("/api/v1/metrics/agent_factory").json()["detail_cache_hits"]
    first = api.get(DETAIL)  # a miss: computed by the endpoint, then cached
    second = api.get(DETAIL)  # a hit
    assert second.status_code == first.status_code == 200
    assert second.content == first.content
    for header in ("content-type", "content-security-policy", "x-content-type-options"):
        assert second.headers.get(header) == first.headers.get(header), header
    figures = api.get("/api/v1/metrics/agent_factory").json()
    assert figures["detail_cache_hits"] == hits_before + 1
    labels = {"method": "GET", "route": "/api/v1/packages/{namespace}/{name}", "status": "200"}
    count = value(scrape(api), "agentfactory_http_request_duration_seconds_count", **labels)
    assert count == 2  # both requests observed under the route template


def test_a_write_is_seen_by_the_next_read(api: Any, acme: Actor, tmp_path: Path) -> None:
    published(api, acme, tmp_path)
    assert api.get(DETAIL).json()["rating"]["count"] == 0
    api.get(DETAIL)  # cached now
    bob = register(api, "bob")
    # A review counts once its author downloaded the version (verified reviews).
    assert api.get(f"{DETAIL}/versions/1.0.0/download", headers=bob.auth).status_code == 200
    review = api.put(f"{DETAIL}/reviews", json={"stars": 4, "body": "ok"}, headers=bob.auth)
    assert review.status_code == 200, review.text
    assert api.get(DETAIL).json()["rating"]["count"] == 1


def test_other_paths_methods_and_bad_names_go_to_the_application(
    api: Any, acme: Actor, tmp_path: Path
) -> None:
    published(api, acme, tmp_path)
    api.get(DETAIL)
    assert api.get(f"{DETAIL}/versions").json()[0]["version"] == "1.0.0"
    assert api.post(DETAIL).status_code == 405
    hostile = api.get("/api/v1/packages/%25%25%25/x")
    assert hostile.status_code == 422 and hostile.json()["detail"].startswith("namespace: ")
    assert api.get("/api/v1/packages/acme/unknown").json()["code"] == "NotFound"

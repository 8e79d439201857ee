"""Packages over HTTP: publish, read, download, yank, and every refusal leaving the store as is."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from tests.marketplace.conftest import Actor, make_package, register


def _count(api: Any) -> int:
    total: int = api.get("/api/v1/packages").json()["total"]
    return total


def test_publish_then_read_detail_versions_resolve_download(
    api: Any, acme: Actor, tmp_path: Path
) -> None:
    archive = make_package(tmp_path, "acme/summarizer", "1.0.0")
    published = acme.publish(archive, "acme/summarizer", "1.0.0")
    assert published.status_code == 201, published.text
    assert published.json()["digest"] == hashlib.sha256(archive).hexdigest()

    detail = api.get("/api/v1/packages/acme/summarizer").json()
    assert detail["latest_version"] == "1.0.0"
    assert detail["publisher"] == "acme"
    assert "Echoes its input" in detail["readme"]

    versions = api.get("/api/v1/packages/acme/summarizer/versions").json()
    assert [v["version"] for v in versions] == ["1.0.0"]
    assert base64.b64decode(versions[0]["signature"])  # bytes travel as base64

    resolved = api.get("/api/v1/packages/acme/summarizer/resolve", params={"spec": ">=1"})
    assert resolved.json()["version"] == "1.0.0"

    download = api.get("/api/v1/packages/acme/summarizer/versions/1.0.0/download")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    assert download.content == archive
    assert download.headers["x-agentfactory-digest"] == hashlib.sha256(archive).hexdigest()
    assert download.headers["x-agentfactory-key-id"] == acme.key.key_id
    # The cached detail is invalidated by the download: the count is fresh.
    assert api.get("/api/v1/packages/acme/summarizer").json()["downloads"] == 1


def test_search_sort_and_paginate(api: Any, acme: Actor, tmp_path: Path) -> None:
    for i in range(3):
        name = f"acme/tool{i}"
        assert acme.publish(make_package(tmp_path, name), name, "1.0.0").status_code == 201
    page = api.get("/api/v1/packages", params={"per_page": 2, "sort": "recent"}).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["per_page"] == 2
    second = api.get("/api/v1/packages", params={"per_page": 2, "page": 2}).json()
    assert len(second["items"]) == 1
    too_many = api.get("/api/v1/packages", params={"per_page": 500})
    assert too_many.status_code == 422
    assert too_many.headers["content-type"] == "application/problem+json"
    assert too_many.json()["errors"][0]["path"] == "query.per_page"
    bad_sort = api.get("/api/v1/packages", params={"sort": "random"})
    assert bad_sort.status_code == 422


def test_duplicate_version_is_409_and_store_unchanged(
    api: Any, acme: Actor, tmp_path: Path
) -> None:
    assert acme.publish(make_package(tmp_path), "acme/summarizer", "1.0.0").status_code == 201
    again = acme.publish(make_package(tmp_path, padding=5), "acme/summarizer", "1.0.0")
    assert again.status_code == 409
    assert again.json()["code"] == "DuplicateRelease"
    assert len(api.get("/api/v1/packages/acme/summarizer/versions").json()) == 1


def test_unsigned_upload_is_refused_with_the_field(api: Any, acme: Actor, tmp_path: Path) -> None:
    archive = make_package(tmp_path)
    response = api.post(
        "/api/v1/packages",
        data={"key_id": acme.key.key_id},
        files={"archive": ("p.zip", archive, "application/zip")},
        headers=acme.auth,
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["path"] == "body.signature"
    assert "unsigned" in problem["detail"]
    assert _count(api) == 0


def test_wrong_signature_is_refused(api: Any, acme: Actor, tmp_path: Path) -> None:
    archive = make_package(tmp_path)
    forged = base64.b64encode(acme.key.sign_release("0" * 64, "acme/summarizer", "1.0.0"))
    response = acme.publish(archive, "acme/summarizer", "1.0.0", data={"signature": forged})
    assert response.status_code == 400
    assert response.json()["code"] == "SignatureMismatch"
    assert _count(api) == 0


def test_missing_and_wrong_tokens_are_401(api: Any, acme: Actor, tmp_path: Path) -> None:
    archive = make_package(tmp_path)
    missing = acme.publish(archive, "acme/summarizer", "1.0.0", headers={})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["code"] == "AuthenticationError"
    wrong = acme.publish(
        archive, "acme/summarizer", "1.0.0", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    basic = acme.publish(
        archive, "acme/summarizer", "1.0.0", headers={"Authorization": "Basic eDp5"}
    )
    assert basic.status_code == 401
    assert _count(api) == 0


def test_publishing_into_someone_elses_namespace_is_403(
    api: Any, acme: Actor, tmp_path: Path
) -> None:
    mallory = register(api, "mallory")
    archive = make_package(tmp_path, "acme/evil")
    response = mallory.publish(archive, "acme/evil", "1.0.0")
    assert response.status_code == 403
    assert response.json()["code"] == "PermissionDenied"
    assert _count(api) == 0


def test_oversized_upload_is_413_before_reading(make_app: Any, tmp_path: Path) -> None:
    api = make_app(max_upload_bytes=4096)
    acme = register(api, "acme")
    archive = make_package(tmp_path, padding=20_000)
    response = acme.publish(archive, "acme/summarizer", "1.0.0")
    assert response.status_code == 413
    assert response.json()["code"] == "UploadTooLarge"
    assert "4096" in response.json()["detail"]
    assert api.get("/api/v1/packages").json()["total"] == 0


def test_chunked_oversized_upload_is_413(make_app: Any, tmp_path: Path) -> None:
    api = make_app(max_upload_bytes=4096)
    acme = register(api, "acme")

    def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 1024

    response = api.post(
        "/api/v1/packages",
        content=chunks(),
        headers={**acme.auth, "Content-Type": "multipart/form-data; boundary=zz"},
    )
    assert response.status_code == 413
    assert api.get("/api/v1/packages").json()["total"] == 0


def test_yank_and_unyank(api: Any, acme: Actor, tmp_path: Path) -> None:
    acme.publish(make_package(tmp_path, version="1.0.0"), "acme/summarizer", "1.0.0")
    acme.publish(make_package(tmp_path, version="1.1.0"), "acme/summarizer", "1.1.0")
    url = "/api/v1/packages/acme/summarizer/versions/1.1.0/yank"
    assert api.post(url, json={"reason": "broken"}).status_code == 401
    yanked = api.post(url, json={"reason": "broken"}, headers=acme.auth)
    assert yanked.status_code == 200
    assert yanked.json()["yanked"] is True and yanked.json()["yank_reason"] == "broken"
    resolved = api.get("/api/v1/packages/acme/summarizer/resolve").json()
    assert resolved["version"] == "1.0.0"
    assert api.get("/api/v1/packages/acme/summarizer").json()["latest_version"] == "1.0.0"
    assert api.delete(url, headers=acme.auth).json()["yanked"] is False
    assert api.get("/api/v1/packages/acme/summarizer/resolve").json()["version"] == "1.1.0"


def test_not_found_is_a_problem(api: Any) -> None:
    response = api.get("/api/v1/packages/acme/nothing")
    assert response.status_code == 404
    assert response.json()["code"] == "NotFound"
    assert response.json()["type"].startswith("urn:agentfactory:problem:")
    assert api.get("/api/v1/packages/acme/nothing/resolve").status_code == 404
    bad = api.get("/api/v1/packages/acme/no thing")
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("name: a package name is 1-64 letters, digits")

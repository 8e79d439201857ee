"""Issue 11, points 5 and 6 through the real API: names are matched in full in every field and
path parameter (a precise 422 naming the field, nothing stored), headers built from names stay
valid, look-alike namespaces are refused at claim, and downloads count once per client a day.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from registry.archive import pack_files
from tests.marketplace.conftest import Actor, make_package, register
from tests.registry.factories import package_files

HOSTILE = ["\n", "\r\n", "\t", " ", "\x00", "\x1b", "\u200b", "\u200d", "\ufeff", "\u202e",
           "\u00a0", "\u2028"]


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


@pytest.mark.parametrize("suffix", HOSTILE)
def test_sign_up_names_are_matched_in_full(api: Any, suffix: str) -> None:
    for body, field in (({"name": f"acme{suffix}", "namespace": "acme"}, "name"),
                        ({"name": "acme", "namespace": f"acme{suffix}"}, "namespace"),
                        ({"name": f"{suffix}acme"}, "name")):
        got = problem(api.post("/api/v1/publishers", json=body), 422, "RequestValidationError")
        assert got["detail"].startswith(f"{field}: a ")
    assert api.get("/api/v1/publishers/acme").status_code == 404


@pytest.mark.parametrize("suffix", HOSTILE)
def test_path_parameters_are_matched_in_full(
    api: Any, acme: Actor, suffix: str, tmp_path: Path
) -> None:
    archive = make_package(tmp_path)
    assert acme.publish(archive, "acme/summarizer", "1.0.0").status_code == 201
    bad = quote(suffix, safe="")
    for path, field in (
        (f"/api/v1/packages/acme{bad}/summarizer", "namespace"),
        (f"/api/v1/packages/acme/summarizer{bad}", "name"),
        (f"/api/v1/packages/acme/summarizer/versions/1.0.0{bad}/download", "version"),
        (f"/api/v1/publishers/acme{bad}", "publisher"),
        (f"/api/v1/publishers/acme{bad}/keys", "publisher"),
    ):
        got = problem(api.get(path), 422, "RequestValidationError")
        assert got["detail"].startswith(f"{field}: "), (path, got)
    assert api.get("/api/v1/packages/acme/summarizer").json()["downloads"] == 0


@pytest.mark.parametrize(
    ("changes", "status", "code", "fragment"),
    [
        ({"name": "acme/summarizer\n"}, 422, "ManifestError", "name: "),
        ({"name": "acme\u200b/summarizer"}, 422, "ManifestError", "name: "),
        ({"name": "acme/summ\u202earizer"}, 422, "ManifestError", "name: "),
        ({"version": "1.0.0\n"}, 400, "InvalidVersion", "invalid version"),
        ({"version": " 1.0.0"}, 400, "InvalidVersion", "invalid version"),
        ({"version": "1.0.0+local"}, 422, "ManifestError", "version: local version label"),
        ({"authors": ["x"] * 100}, 422, "ManifestError", "authors: at most 20 entries"),
    ],
)
def test_manifest_names_and_versions_through_the_api(
    api: Any, acme: Actor, changes: dict[str, str], status: int, code: str, fragment: str
) -> None:
    archive = pack_files(package_files(manifest={"examples": [], **changes}))
    # Refused while parsing, before the signature is looked at.
    response = acme.publish(archive, "acme/summarizer", "1.0.0")
    assert fragment in problem(response, status, code)["detail"]
    assert api.get("/api/v1/packages/acme/summarizer").status_code == 404


def test_download_headers_are_built_from_exact_names(api: Any, acme: Actor, tmp_path: Path) -> None:
    archive = make_package(tmp_path, "acme/sum_mar-izer", "1.0rc1")
    assert acme.publish(archive, "acme/sum_mar-izer", "1.0rc1").status_code == 201
    got = api.get("/api/v1/packages/acme/sum-mar-izer/versions/1.0rc1/download")
    assert got.status_code == 200
    assert got.headers["content-disposition"] == (
        'attachment; filename="acme-sum_mar-izer-1.0rc1.zip"'
    )


def test_a_look_alike_namespace_is_refused_at_sign_up(api: Any, acme: Actor) -> None:
    for namespace in ("acne", "acmee", "amce", "ACM3"):
        got = problem(api.post("/api/v1/publishers", json={"name": f"x{namespace}",
                                                           "namespace": namespace}),
                      409, "LookalikeName")
        assert f"namespace {namespace!r} is too similar" in got["detail"]
        assert api.get(f"/api/v1/publishers/x{namespace}").status_code == 404
    assert api.post("/api/v1/publishers", json={"name": "zeta"}).status_code == 201


def test_downloads_count_once_per_client_per_day(api: Any, acme: Actor, tmp_path: Path) -> None:
    archive = make_package(tmp_path)
    assert acme.publish(archive, "acme/summarizer", "1.0.0").status_code == 201
    url = "/api/v1/packages/acme/summarizer/versions/1.0.0/download"
    for _ in range(25):  # one anonymous client hammering
        assert api.get(url).status_code == 200
    assert api.get("/api/v1/packages/acme/summarizer").json()["downloads"] == 1
    for _ in range(3):  # a signed-in account is one client, whatever its address
        assert api.get(url, headers=acme.auth).status_code == 200
    bob = register(api, "bob")
    assert api.get(url, headers=bob.auth).status_code == 200
    # A bad token still downloads; it is counted as its address, already counted today.
    assert api.get(url, headers={"Authorization": "Bearer afr_forged"}).status_code == 200
    assert api.get("/api/v1/packages/acme/summarizer").json()["downloads"] == 3

"""The API says what it enforces: the OpenAPI document declares the server's own rules, the
server holds to exactly those, refusals name the field in a user's terms, and `405`/`OPTIONS`
list every method a path accepts."""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from marketplace.server.api.fields import (
    KEY_ID,
    PUBLIC_KEY_B64,
    SIGNATURE_B64,
    SPECIFIER_SET_PATTERN,
    TOKEN_ID,
    VERSION_PATTERN,
)
from registry.errors import InvalidName
from registry.names import NAME_PART_PATTERN, split_name
from registry.service import Registry
from registry.signing import SigningKey, key_id_for
from tests.marketplace.conftest import Actor, make_package, register

PACKAGE = "/api/v1/packages/acme/summarizer"
NAME_PART = f"^{NAME_PART_PATTERN}$"
QUICK = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def _parameters(api: Any, path: str, method: str = "get") -> dict[str, dict[str, Any]]:
    operation = api.get("/api/v1/openapi.json").json()["paths"][path][method]
    return {p["name"]: p["schema"] for p in operation["parameters"]}


def test_the_document_declares_the_registrys_own_name_rule(api: Any) -> None:
    document = api.get("/api/v1/openapi.json").json()
    package_paths = [p for p in document["paths"] if p.startswith("/api/v1/packages/{namespace}")]
    assert len(package_paths) >= 7
    for path in package_paths:
        method = next(iter(document["paths"][path]))
        params = _parameters(api, path, method)
        assert params["namespace"]["pattern"] == NAME_PART, path
        assert params["name"]["pattern"] == NAME_PART and params["name"]["maxLength"] == 64
    publisher = document["components"]["schemas"]["PublisherCreate"]["properties"]["name"]
    assert publisher["pattern"] == NAME_PART
    assert _parameters(api, "/api/v1/publishers/{publisher}")["publisher"]["pattern"] == NAME_PART
    download = "/api/v1/packages/{namespace}/{name}/versions/{version}/download"
    assert _parameters(api, download)["version"]["pattern"] == f"^{VERSION_PATTERN}$"
    review = document["components"]["schemas"]["ReviewUpsert"]["properties"]["stars"]
    assert (review["minimum"], review["maximum"]) == (1, 5)


def test_a_trailing_newline_is_refused_as_the_document_says(api: Any, acme: Actor) -> None:
    # JSON Schema's `$` ends the text; Python's `$` would also match before a final newline.
    assert api.get("/api/v1/packages/acme%0A/summarizer").status_code == 422
    refused = api.post("/api/v1/publishers", json={"name": "carol\n"})
    assert refused.status_code == 422
    assert api.get("/api/v1/publishers/carol").status_code == 404


@pytest.mark.parametrize(
    ("method", "url", "body", "detail"),
    [
        ("POST", "/api/v1/publishers", {"name": "builtin/x"}, "name: a publisher name is 1-64"),
        ("POST", "/api/v1/publishers", {"name": "ok", "namespace": "-x"},
         "namespace: a namespace is 1-64"),
        ("GET", "/api/v1/packages/acme/-x", None, "name: a package name is 1-64"),
        ("GET", f"{PACKAGE}/versions/one/download", None, "version: a version is a PEP 440"),
        ("GET", f"{PACKAGE}/resolve?spec=latest", None, "spec: a version specifier is"),
        ("GET", "/api/v1/packages?sort=random", None, "sort: must be one of relevance, rating"),
        ("POST", "/api/v1/publishers", {"nam": "x"}, "name: required; nam: not a field of"),
    ],
)
def test_refusals_name_the_field_in_the_users_terms(
    api: Any, method: str, url: str, body: Any, detail: str
) -> None:
    refused = api.request(method, url, json=body)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["detail"].startswith(detail), problem["detail"]
    assert "package name" not in problem["detail"] or "a package name" in detail
    assert "body." not in problem["detail"] and "Input should" not in problem["detail"]


def test_stars_out_of_range_say_so(api: Any, acme: Actor, tmp_path: Any) -> None:
    assert acme.publish(make_package(tmp_path), "acme/summarizer", "1.0.0").status_code == 201
    bob = register(api, "bob")
    refused = api.put(f"{PACKAGE}/reviews", json={"stars": 6}, headers=bob.auth)
    assert refused.status_code == 422
    assert refused.json()["detail"] == "stars: must be 1 to 5"
    assert refused.json()["errors"] == [{"path": "body.stars", "message": "must be 1 to 5"}]


def test_registry_errors_say_which_name_is_wrong(api: Any) -> None:
    registry: Registry = api.app.state.market.registry
    with pytest.raises(InvalidName, match=r"^invalid publisher name 'a b': must be 1-64"):
        registry.register_publisher("a b", None)
    with pytest.raises(InvalidName, match=r"^invalid namespace 'a b': must be 1-64"):
        registry.register_publisher("fine", "a b")


def test_405_and_options_list_every_method_of_the_path(api: Any) -> None:
    reviews = f"{PACKAGE}/reviews"
    options = api.options(reviews)
    assert options.status_code == 204 and options.headers["allow"] == "GET, PUT, DELETE, OPTIONS"
    refused = api.patch(reviews)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, PUT, DELETE, OPTIONS"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"].endswith("allowed: GET, PUT, DELETE, OPTIONS")
    assert api.options("/api/v1/packages").headers["allow"] == "GET, POST, OPTIONS"
    assert api.options("/api/v1/nothing/here").status_code == 404


def test_the_registrys_own_ids_and_bytes_fit_the_declared_rules(api: Any, acme: Actor) -> None:
    key = SigningKey.generate()
    assert KEY_ID.test(key_id_for(key.public_bytes)) and KEY_ID.test(acme.key.key_id)
    assert PUBLIC_KEY_B64.test(base64.b64encode(key.public_bytes).decode())
    signature = key.sign_release("0" * 64, "acme/x", "1.0.0")
    assert SIGNATURE_B64.test(base64.b64encode(signature).decode())
    created = api.post("/api/v1/tokens", json={"scopes": ["review"]}, headers=acme.auth)
    assert TOKEN_ID.test(created.json()["id"])
    for _ in range(50):
        assert PUBLIC_KEY_B64.test(base64.b64encode(secrets.token_bytes(32)).decode())
        assert SIGNATURE_B64.test(base64.b64encode(secrets.token_bytes(64)).decode())


@QUICK
@given(st.from_regex(NAME_PART, fullmatch=True), st.from_regex(NAME_PART, fullmatch=True))
def test_every_declared_name_is_one_the_registry_accepts(namespace: str, name: str) -> None:
    assert split_name(f"{namespace}/{name}") == (namespace, name)


@QUICK
@given(st.from_regex(f"^{VERSION_PATTERN}$", fullmatch=True))
def test_every_declared_version_parses_under_pep_440(version: str) -> None:
    Version(version)


@QUICK
@given(st.from_regex(f"^{SPECIFIER_SET_PATTERN}$", fullmatch=True))
def test_every_declared_specifier_set_parses(spec: str) -> None:
    SpecifierSet(spec)


@pytest.mark.parametrize(
    "spec", ["", ">=1.0", ">=1.0,<2", "==1.0.*", "~=1.2", " >= 1.0 , != 1.5 ", "<2.0b1", "==1.0+l"]
)
def test_the_usual_specifiers_are_declared_valid(spec: str) -> None:
    assert re.fullmatch(SPECIFIER_SET_PATTERN, spec)

"""Publishers, tokens and keys over HTTP."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from registry.signing import SigningKey
from tests.marketplace.conftest import Actor, FakeClock, make_package, register


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_register_returns_a_working_token_once(api: Any) -> None:
    response = api.post(
        "/api/v1/publishers", json={"name": "acme", "namespace": "acme", "email": "a@example.com"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["publisher"]["name"] == "acme" and body["publisher"]["namespaces"] == ["acme"]
    token = body["token"]
    created = api.post(
        "/api/v1/tokens", json={"scopes": ["review"]}, headers={"Authorization": f"Bearer {token}"}
    )
    assert created.status_code == 201 and created.json()["scopes"] == ["review"]
    assert api.get("/api/v1/publishers/acme").json()["name"] == "acme"
    assert api.get("/api/v1/publishers/nobody").status_code == 404


def test_sign_ups_are_limited_per_client_address(make_app: Any, clock: FakeClock) -> None:
    from marketplace.server.settings import RateLimit

    api = make_app(register_rate=RateLimit(2, 2 / 3600))  # two an hour
    assert [api.post("/api/v1/publishers", json={"name": f"user{i}"}).status_code
            for i in range(2)] == [201, 201]
    refused = api.post("/api/v1/publishers", json={"name": "squatter"})
    assert refused.status_code == 429 and refused.json()["code"] == "RateLimited"
    assert int(refused.headers["retry-after"]) > 0
    assert api.get("/api/v1/publishers/squatter").status_code == 404
    clock.advance(1800)  # half an hour: one sign-up earned back
    assert api.post("/api/v1/publishers", json={"name": "patient"}).status_code == 201


def test_duplicate_and_reserved_names(api: Any) -> None:
    register(api, "acme")
    again = api.post("/api/v1/publishers", json={"name": "acme"})
    assert again.status_code == 409
    reserved = api.post("/api/v1/publishers", json={"name": "someone", "namespace": "admin"})
    assert reserved.status_code in (403, 409)
    assert reserved.json()["detail"]
    missing = api.post("/api/v1/publishers", json={})
    assert missing.status_code == 422 and missing.json()["errors"][0]["path"] == "body.name"


def test_revoked_token_is_refused(api: Any, acme: Actor) -> None:
    created = api.post("/api/v1/tokens", json={"scopes": ["publish"]}, headers=acme.auth).json()
    extra = {"Authorization": f"Bearer {created['token']}"}
    mint = {"scopes": ["publish"]}
    assert api.post("/api/v1/tokens", json=mint, headers=extra).status_code == 201
    assert api.delete(f"/api/v1/tokens/{created['id']}", headers=acme.auth).status_code == 204
    assert api.post("/api/v1/tokens", json=mint, headers=extra).status_code == 401


def test_review_only_token_cannot_publish(api: Any, acme: Actor, tmp_path: Path) -> None:
    review_token = api.post(
        "/api/v1/tokens", json={"scopes": ["review"]}, headers=acme.auth
    ).json()["token"]
    archive = make_package(tmp_path)
    response = acme.publish(
        archive, "acme/summarizer", "1.0.0", headers={"Authorization": f"Bearer {review_token}"}
    )
    assert response.status_code == 403 and "publish" in response.json()["detail"]


def test_key_rotation_listing_and_revocation(api: Any, acme: Actor) -> None:
    keys = api.get("/api/v1/publishers/acme/keys").json()
    assert [k["key_id"] for k in keys] == [acme.key.key_id]
    assert base64.b64decode(keys[0]["public_key"], validate=True) == acme.key.public_bytes
    new = SigningKey.generate()
    unsigned = api.post(
        "/api/v1/keys", json={"public_key": b64(new.public_bytes)}, headers=acme.auth
    )
    assert unsigned.status_code == 403
    statement = acme.key.sign_rotation(new.public_bytes, "acme")
    rotated = api.post(
        "/api/v1/keys",
        json={
            "public_key": b64(new.public_bytes),
            "rotation_signature": b64(statement),
            "signed_by": acme.key.key_id,
        },
        headers=acme.auth,
    )
    assert rotated.status_code == 201 and rotated.json()["signed_by"] == acme.key.key_id
    revoked = api.delete(f"/api/v1/keys/{acme.key.key_id}", headers=acme.auth)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    listed = {k["key_id"]: k["revoked"] for k in api.get("/api/v1/publishers/acme/keys").json()}
    assert listed == {acme.key.key_id: True, new.key_id: False}
    bad = api.post("/api/v1/keys", json={"public_key": b64(b"short")}, headers=acme.auth)
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("public_key: a public key is 32 raw Ed25519 bytes")

"""Graded retirement over HTTP: deprecate, yank, revoke by the owner, refused for another
publisher, revoked by an admin; the signed revocation list and its verification by the client;
verified reviews and ratings per version; whoami."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from marketplace.client.errors import RevocationListInvalid
from marketplace.client.retirement import RevocationCache, verify
from registry.schemas import Principal
from registry.statements import sign_statement, statement_bytes
from tests.marketplace.conftest import Actor, register

PKG = "/api/v1/packages/acme/summarizer"
V1 = f"{PKG}/versions/1.0.0"


def _signed_revocation(actor: Actor, api: Any, version: str, reason: str) -> dict[str, Any]:
    release = next(r for r in api.get(f"{PKG}/versions").json() if r["version"] == version)
    statement = statement_bytes("acme/summarizer", version, release["digest"], reason)
    signature = sign_statement(actor.key, statement)
    return {"reason": reason, "signature": base64.b64encode(signature).decode(),
            "key_id": actor.key.key_id}


def _admin_token(api: Any, name: str) -> str:
    """An admin token for account `name`, minted in-process as an operator would."""
    registry = api.app.state.market.registry
    me = registry.authenticate(register(api, name).token)
    operator = Principal(me.publisher_id, me.name, me.namespaces, frozenset({"admin"}), "op")
    return str(registry.create_token(operator, {"admin"}))


def test_owner_deprecates_yanks_and_revokes_others_cannot(api: Any, acme_releases: Actor) -> None:
    mallory = register(api, "mallory")
    body = {"reason": "use the new API", "successor": "acme/summarizer2"}
    # The successor must exist.
    assert api.post(f"{V1}/deprecate", json=body, headers=acme_releases.auth).status_code == 404
    body = {"reason": "use 1.1.0"}
    assert api.post(f"{V1}/deprecate", json=body, headers=mallory.auth).status_code == 403
    done = api.post(f"{V1}/deprecate", json=body, headers=acme_releases.auth)
    assert done.status_code == 200 and done.json()["deprecated_reason"] == "use 1.1.0"
    # Deprecated still resolves; yanked does not, except an exact pin.
    assert api.get(f"{PKG}/resolve", params={"spec": "<1.1"}).json()["version"] == "1.0.0"
    assert api.post(f"{V1}/yank", json={"reason": "broken"}, headers=acme_releases.auth).is_success
    assert api.get(f"{PKG}/resolve", params={"spec": "<1.1"}).status_code == 404
    revoke = _signed_revocation(mallory, api, "1.0.0", "stolen key")
    assert api.post(f"{V1}/revoke", json=revoke, headers=mallory.auth).status_code == 403
    # An owner's revocation must be signed, and by one of the owner's keys.
    unsigned = api.post(f"{V1}/revoke", json={"reason": "x"}, headers=acme_releases.auth)
    assert unsigned.status_code == 400 and "signed" in unsigned.json()["detail"]
    assert api.post(f"{V1}/revoke", json=revoke, headers=acme_releases.auth).status_code == 404
    revoke = _signed_revocation(acme_releases, api, "1.0.0", "stolen key")
    done = api.post(f"{V1}/revoke", json=revoke, headers=acme_releases.auth)
    assert done.status_code == 200 and done.json()["revoked"] is True
    again = api.post(f"{V1}/revoke", json=revoke, headers=acme_releases.auth)
    assert again.status_code == 409
    # Revoked: not even an exact pin resolves, and the bytes are no longer served.
    pinned = api.get(f"{PKG}/resolve", params={"spec": "==1.0.0"})
    assert pinned.status_code == 404 and pinned.json()["code"] == "ReleaseRevoked"
    assert "stolen key" in pinned.json()["detail"]
    assert api.get(f"{V1}/download").json()["code"] == "ReleaseRevoked"
    versions = {r["version"]: r for r in api.get(f"{PKG}/versions").json()}
    assert versions["1.0.0"]["revoke_reason"] == "stolen key"


def test_admin_revokes_any_release_signed_by_the_registry(
    api: Any, acme_releases: Actor, tmp_path: Path
) -> None:
    admin = {"Authorization": f"Bearer {_admin_token(api, 'root-op')}"}
    done = api.post(f"{PKG}/versions/1.1.0/revoke", json={"reason": "malware"}, headers=admin)
    assert done.status_code == 200, done.text
    signed = api.get("/api/v1/revocations").json()
    listing = verify(signed, "test")
    entry = listing.status("acme/summarizer", "1.1.0")
    assert entry is not None and (entry.level, entry.signer, entry.reason) == (
        "revoked", "registry", "malware")
    assert entry.key_id == signed["key_id"]  # the registry's own key signed the statement
    assert listing.serial >= 1
    # The package now lists its best live release.
    assert api.get(PKG).json()["latest_version"] == "1.0.0"


def test_revocation_list_is_verified_cached_and_forgeries_refused(
    api: Any, acme_releases: Actor, tmp_path: Path
) -> None:
    api.post(f"{V1}/deprecate", json={"reason": "old"}, headers=acme_releases.auth)
    revoke = _signed_revocation(acme_releases, api, "1.1.0", "compromised")
    revoked = api.post(f"{PKG}/versions/1.1.0/revoke", json=revoke, headers=acme_releases.auth)
    assert revoked.is_success
    signed = api.get("/api/v1/revocations").json()
    cache = RevocationCache(tmp_path / "client-home")
    stored = cache.store(signed)
    levels = {(e.version, e.level) for e in (stored.status("acme/summarizer", v)
                                               for v in ("1.0.0", "1.1.0")) if e}
    assert levels == {("1.0.0", "deprecated"), ("1.1.0", "revoked")}
    assert cache.load() is not None  # verified again when read back
    # A forged payload (the revocation dropped) does not verify.
    payload = json.loads(signed["payload"])
    payload["entries"] = [e for e in payload["entries"] if e["level"] != "revoked"]
    forged = {**signed, "payload": json.dumps(payload, sort_keys=True, separators=(",", ":"))}
    with pytest.raises(RevocationListInvalid, match="signature does not verify"):
        cache.store(forged)
    # Nor does a list signed by another key than the pinned registry key.
    from registry.signing import SigningKey
    from registry.statements import LIST_DOMAIN

    other = SigningKey.generate()
    resigned = {**forged, "public_key": base64.b64encode(other.public_bytes).decode(),
                "signature": base64.b64encode(
                    other.sign(LIST_DOMAIN + forged["payload"].encode())).decode()}
    with pytest.raises(RevocationListInvalid, match="trusts the registry key"):
        cache.store(resigned)
    # A tampered cache is an error, never silently ignored.
    raw = json.loads(cache.path.read_text())
    raw["payload"] = raw["payload"].replace("compromised", "fine")
    cache.path.write_text(json.dumps(raw))
    with pytest.raises(RevocationListInvalid):
        cache.load()


def test_only_downloaders_reviews_count_per_version_with_an_explanation(
    api: Any, acme_releases: Actor
) -> None:
    bob, eve = register(api, "bob"), register(api, "eve")
    reviews = f"{PKG}/reviews"
    # bob downloads 1.0.0 with his token; eve never downloads.
    assert api.get(f"{V1}/download", headers=bob.auth).status_code == 200
    verified = api.put(reviews, json={"stars": 4, "title": "fine"}, headers=bob.auth).json()
    apart = api.put(reviews, json={"stars": 1, "title": "never used it"}, headers=eve.auth).json()
    assert (verified["verified"], verified["version"]) == (True, "1.0.0")
    assert (apart["verified"], apart["version"]) == (False, "1.1.0")
    rating = api.get(f"{PKG}/rating").json()
    assert (rating["count"], rating["mean"], rating["unverified"]) == (1, 4.0, 1)
    assert rating["latest"] == {"version": "1.1.0", "count": 0, "mean": None}
    assert rating["explanation"].startswith("4.0 from 1 rating; ranked as 4.0 because")
    listed = api.get(reviews, params={"verified": "false"}).json()
    assert [r["reviewer"] for r in listed["items"]] == ["eve"]
    # Naming a version one did not download is accepted but not counted.
    named = api.put(reviews, json={"stars": 5, "version": "1.1.0"}, headers=bob.auth).json()
    assert (named["version"], named["verified"]) == ("1.1.0", False)


def test_whoami_names_the_account_and_scopes(api: Any, acme: Actor) -> None:
    me = api.get("/api/v1/whoami", headers=acme.auth).json()
    assert me["publisher"] == "acme" and me["namespaces"] == ["acme"]
    assert "publish" in me["scopes"] and len(me["token_id"]) == 16
    assert api.get("/api/v1/whoami").status_code == 401

"""The trust endpoints under hostile input: the release log's reads, retirement writes, whoami
and the revocation list. Each attack gets a precise 4xx problem and leaves the store (releases,
their retirement, the log) exactly as it was, also when it comes in a burst."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.marketplace.conftest import Actor, register

PKG = "/api/v1/packages/acme/summarizer"
V1 = f"{PKG}/versions/1.0.0"
LOG = "/api/v1/log"


def _store(api: Any) -> tuple[Any, Any, Any]:
    """What an attack must not change: the releases with their retirement, the log's head
    (its size and root), the revocation list's entries."""
    head = api.get(f"{LOG}/head").json()
    revoked = json.loads(api.get("/api/v1/revocations").json()["payload"])  # signed afresh
    return (api.get(f"{PKG}/versions").json(), (head["tree_size"], head["root_hash"]),
            (revoked["serial"], revoked["entries"]))


def _problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.headers
    body: dict[str, Any] = answer.json()
    assert body["detail"], body
    return body


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/proof/inclusion", {"name": "acme", "version": "1.0.0"}, 422),  # no namespace
    ("/proof/inclusion", {"name": "acme/summarizer/x", "version": "1.0.0"}, 422),
    ("/proof/inclusion", {"name": "acme/" + "s" * 200, "version": "1.0.0"}, 422),
    ("/proof/inclusion", {"name": "acme/summarizer", "version": "1.0.0'; drop"}, 422),
    ("/proof/inclusion", {"name": "acme/summarizer", "version": "9" * 500}, 422),
    ("/proof/inclusion", {"name": "acme/summarizer"}, 422),
    ("/proof/inclusion", {"name": "acme/summarizer", "version": "7.0.0"}, 404),
    ("/proof/inclusion", {"name": "mallory/summarizer", "version": "1.0.0"}, 404),
    ("/proof/consistency", {"from": "0"}, 422),
    ("/proof/consistency", {"from": "-1"}, 422),
    ("/proof/consistency", {"from": "1e9"}, 422),
    ("/proof/consistency", {"from": str(2**70)}, 422),
    ("/proof/consistency", {"from": "2", "to": "1"}, 404),  # no proof goes backwards
    ("/proof/consistency", {"from": "1", "to": "999"}, 404),  # a size the log never had
    ("/entries", {"limit": "0"}, 422),
    ("/entries", {"limit": "100000"}, 422),
    ("/entries", {"start": "-5"}, 422),
    ("/entries", {"start": "x"}, 422),
])
def test_hostile_log_reads_are_refused_precisely(
    api: Any, acme_releases: Actor, path: str, params: dict[str, str], status: int
) -> None:
    before = _store(api)
    _problem(api.get(LOG + path, params=params), status)
    assert _store(api) == before


def test_the_log_answers_what_it_has_and_no_more(api: Any, acme_releases: Actor) -> None:
    size = api.get(f"{LOG}/head").json()["tree_size"]
    past = api.get(f"{LOG}/entries", params={"start": size + 10})
    assert past.status_code == 200, past.text
    assert past.json()["entries"] == [] and past.json()["head"]["tree_size"] == size
    page = api.get(f"{LOG}/entries", params={"start": 0, "limit": 1}).json()
    assert len(page["entries"]) == 1 and page["head"]["tree_size"] == size


@pytest.mark.parametrize(("method", "suffix", "body", "status"), [
    ("POST", "deprecate", {}, 422),  # no reason
    ("POST", "deprecate", {"reason": ""}, 422),
    ("POST", "deprecate", {"reason": "r" * 1001}, 422),  # over the registry's limit
    ("POST", "deprecate", {"reason": "old", "successor": "not a name"}, 422),
    ("POST", "deprecate", {"reason": "old", "successor": "ghost/package"}, 404),
    ("POST", "deprecate", {"reason": "old", "extra": 1}, 422),
    ("POST", "deprecate", ["reason"], 422),
    ("POST", "revoke", {"reason": "bad", "signature": "not base64!", "key_id": "0" * 32}, 422),
    ("POST", "revoke", {"reason": "bad", "signature": "A" * 86 + "==", "key_id": "xyz"}, 422),
    ("POST", "revoke", {"reason": "bad", "signature": "A" * 86 + "==", "key_id": "0" * 32}, 404),
    ("POST", "revoke", {"reason": "bad", "signature": "A" * 86 + "==", "key_id": "OWN"}, 400),
    ("POST", "revoke", {"reason": "r" * 5000}, 422),
])
def test_hostile_retirement_bodies_leave_the_release_as_it_was(
    api: Any, acme_releases: Actor, method: str, suffix: str, body: Any, status: int
) -> None:
    before = _store(api)
    if isinstance(body, dict) and body.get("key_id") == "OWN":  # the owner's key, forged bytes
        body = {**body, "key_id": acme_releases.key.key_id}
    _problem(api.request(method, f"{V1}/{suffix}", json=body, headers=acme_releases.auth), status)
    assert _store(api) == before


def test_retirement_of_what_is_not_yours_or_not_there_is_refused(
    api: Any, acme_releases: Actor
) -> None:
    mallory = register(api, "mallory")
    before = _store(api)
    reason = {"reason": "mine now"}
    for method, path, headers, status in (
        ("POST", f"{V1}/deprecate", mallory.auth, 403),
        ("DELETE", f"{V1}/deprecate", mallory.auth, 403),
        ("POST", f"{V1}/revoke", mallory.auth, 403),
        ("POST", f"{V1}/deprecate", {}, 401),
        ("POST", f"{V1}/revoke", {"Authorization": "Bearer afr_forged"}, 401),
        ("POST", f"{PKG}/versions/9.9.9/deprecate", acme_releases.auth, 404),
        ("POST", "/api/v1/packages/acme/ghost/versions/1.0.0/revoke", acme_releases.auth, 404),
        ("POST", f"{PKG}/versions/1..0/deprecate", acme_releases.auth, 422),
    ):
        body = None if method == "DELETE" else reason
        _problem(api.request(method, path, json=body, headers=headers), status)
    assert _store(api) == before


def test_a_burst_of_hostile_requests_changes_nothing(api: Any, acme_releases: Actor) -> None:
    mallory = register(api, "mallory")
    before = _store(api)

    def attack(n: int) -> int:
        if n % 3 == 0:
            answer = api.post(f"{V1}/revoke", json={"reason": f"r{n}"}, headers=mallory.auth)
        elif n % 3 == 1:
            answer = api.get(f"{LOG}/proof/inclusion",
                             params={"name": "acme/summarizer", "version": f"9.{n}.0"})
        else:
            answer = api.get(f"{LOG}/proof/consistency", params={"from": 3 + n, "to": 2})
        return int(answer.status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(attack, range(36)))
    assert statuses == [403 if n % 3 == 0 else 404 for n in range(36)], statuses
    assert _store(api) == before


@pytest.mark.parametrize("header", [
    None, "Bearer", "Bearer ", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer afr_" + "x" * 64,
    "Bearer " + "afr_" + "\u00e9" * 10, "Bearer afr_" + "a" * 10_000,
])
def test_whoami_refuses_every_bad_credential(api: Any, acme: Actor, header: str | None) -> None:
    # Sent as raw bytes: a header that is not ASCII reaches the server as UTF-8.
    headers = {} if header is None else {"Authorization": header.encode()}
    _problem(api.get("/api/v1/whoami", headers=headers), 401)
    assert api.get("/api/v1/whoami", headers=acme.auth).json()["publisher"] == "acme"


def test_a_revoked_token_is_refused_at_once(api: Any, acme: Actor) -> None:
    minted = api.post("/api/v1/tokens", json={"scopes": ["review"]}, headers=acme.auth)
    assert minted.status_code == 201, minted.text
    token, token_id = minted.json()["token"], minted.json()["id"]
    other = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/whoami", headers=other).status_code == 200
    assert api.delete(f"/api/v1/tokens/{token_id}", headers=acme.auth).status_code in (200, 204)
    _problem(api.get("/api/v1/whoami", headers=other), 401)

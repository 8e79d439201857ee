"""Tampering: every hostile upload of the corpus is refused, precisely, and changes nothing.

Against a real server (`agentfactory serve` on 127.0.0.1): acme publishes `acme/tool 1.0.0`,
then each case of `tests.reliability.corpus` is uploaded through the HTTP API. Each must answer
its expected status with a problem document whose `code` is the expected error class and whose
`detail` contains the expected fragment. The store (a logical dump of every table plus every
blob's path and bytes) must be identical before and after the whole corpus.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from registry.signing import SigningKey
from tests.marketplace.conftest import LiveServer
from tests.reliability.conftest import Figures, store_fingerprint
from tests.reliability.corpus import NAME, PUBLISHED, Hostile, Keys, hostile_uploads, sign_case
from tests.reliability.corpus import sign as sign_release
from tests.reliability.corpus import valid as valid_archive

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

MIN_CASES = 50


def _register(client: httpx.Client, name: str) -> tuple[str, SigningKey]:
    reply = client.post("/api/v1/publishers", json={"name": name, "namespace": name})
    assert reply.status_code == 201, reply.text
    token: str = reply.json()["token"]
    key = SigningKey.generate()
    body = {"public_key": base64.b64encode(key.public_bytes).decode()}
    added = client.post("/api/v1/keys", json=body, headers=_auth(token))
    assert added.status_code == 201, added.text
    return token, key


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _setup(client: httpx.Client) -> tuple[Keys, dict[str, dict[str, str]]]:
    acme_token, acme_key = _register(client, "acme")
    mallory_token, mallory_key = _register(client, "mallory")
    # A second acme key, added by a rotation statement and then revoked.
    old = SigningKey.generate()
    rotation = acme_key.sign_rotation(old.public_bytes, "acme")
    added = client.post("/api/v1/keys", headers=_auth(acme_token), json={
        "public_key": base64.b64encode(old.public_bytes).decode(),
        "rotation_signature": base64.b64encode(rotation).decode(), "signed_by": acme_key.key_id,
    })
    assert added.status_code == 201, added.text
    revoked = client.delete(f"/api/v1/keys/{old.key_id}", headers=_auth(acme_token))
    assert revoked.status_code == 200, revoked.text
    review_only = client.post("/api/v1/tokens", json={"scopes": ["review"]},
                              headers=_auth(acme_token))
    assert review_only.status_code == 201, review_only.text
    doomed = client.post("/api/v1/tokens", json={"scopes": ["publish"]},
                         headers=_auth(acme_token))
    gone = client.delete(f"/api/v1/tokens/{doomed.json()['id']}", headers=_auth(acme_token))
    assert gone.status_code == 204, gone.text

    archive = valid_archive(version=PUBLISHED)
    signature = sign_release(acme_key, archive, NAME, PUBLISHED)
    published = client.post(
        "/api/v1/packages", headers=_auth(acme_token),
        data={"signature": signature, "key_id": acme_key.key_id},
        files={"archive": ("tool.zip", archive, "application/zip")},
    )
    assert published.status_code == 201, published.text
    keys = Keys(acme_key, old, mallory_key, SigningKey.generate(), archive,
                base64.b64decode(signature))
    headers = {
        "acme": _auth(acme_token), "mallory": _auth(mallory_token), "anonymous": {},
        "review_only": _auth(review_only.json()["token"]),
        "revoked": _auth(doomed.json()["token"]),
    }
    return keys, headers


def _upload(client: httpx.Client, case: Hostile, keys: Keys,
            headers: dict[str, dict[str, str]]) -> httpx.Response:
    data = {"signature": sign_case(case, keys), "key_id": case.key_id or keys.acme.key_id}
    for name in case.omit:
        data.pop(name)
    return client.post(
        "/api/v1/packages", headers=headers[case.caller], data=data,
        files={"archive": ("pkg.zip", case.archive, "application/zip")},
    )


def _mismatch(case: Hostile, response: httpx.Response) -> str | None:
    try:
        body: Any = response.json()
    except ValueError:
        return f"{case.label}: {response.status_code} non-JSON {response.text[:200]!r}"
    ok = (
        response.status_code == case.status
        and response.headers.get("content-type", "").startswith("application/problem+json")
        and body.get("code") == case.code
        and case.fragment in body.get("detail", "")
    )
    if ok:
        return None
    return (f"{case.label}: expected {case.status} {case.code} ~{case.fragment!r}, got "
            f"{response.status_code} {body.get('code')} {body.get('detail', '')[:300]!r}")


def test_hostile_uploads_are_refused_and_change_nothing(
    live_server_factory: Callable[..., LiveServer], figures: Figures
) -> None:
    server = live_server_factory(AGENTFACTORY_BOOTSTRAP="0", AGENTFACTORY_PUBLISH_RATE="0")
    with httpx.Client(base_url=server, timeout=60.0) as client:
        keys, headers = _setup(client)
        cases = hostile_uploads(keys)
        assert len(cases) >= MIN_CASES
        assert len({c.label for c in cases}) == len(cases), "case labels must be unique"
        before = store_fingerprint(server.home)
        problems = [p for c in cases if (p := _mismatch(c, _upload(client, c, keys, headers)))]
        after = store_fingerprint(server.home)
        # The server still serves the one real release, intact.
        versions = client.get(f"/api/v1/packages/{NAME}/versions").json()
    figures.record("tamper.cases", len(cases))
    figures.record("tamper.refused", len(cases) - len(problems))
    assert not problems, f"{len(problems)} of {len(cases)} cases:\n" + "\n".join(problems)
    assert before == after, "a refused upload changed the store"
    assert [v["version"] for v in versions] == [PUBLISHED]

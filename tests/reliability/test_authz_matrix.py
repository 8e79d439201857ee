"""Authorization matrix: every write operation x every kind of caller.

The rows are checked against the server's own OpenAPI document: a write operation (POST, PUT,
PATCH, DELETE) without a row fails the suite, so a new endpoint cannot be forgotten.

Each row runs in a fresh world (its own app and home): alice owns `alice/tool 1.0.0`, bob
reviewed it, mallory is an unrelated publisher; each has a full token, single-scope tokens and
a revoked token. Callers try the operation in order, the rightful caller last:

- anonymous and a revoked token of the rightful publisher: 401;
- a token of the rightful publisher lacking the needed scope: 403;
- another publisher: 403 or 404 (the resource is not theirs; 404 hides that it exists);
- the rightful publisher: 2xx.

Every refused attempt must leave the store byte-for-byte unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from registry.signing import SigningKey
from tests.reliability.conftest import Figures, store_fingerprint
from tests.reliability.corpus import valid

pytestmark = pytest.mark.reliability

WRITE_METHODS = {"post", "put", "patch", "delete"}


@dataclass
class World:
    client: Any
    home: Path
    tokens: dict[str, str] = field(default_factory=dict)  # "alice", "alice:review", ...
    keys: dict[str, SigningKey] = field(default_factory=dict)
    ids: dict[str, Any] = field(default_factory=dict)

    def auth(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}

    def call(self, who: str | None, request: Request) -> Any:
        method, url, kwargs = request
        return self.client.request(method, url, headers=self.auth(who), **kwargs)


Request = tuple[str, str, dict[str, Any]]


def _register(world: World, name: str) -> None:
    client = world.client
    reply = client.post("/api/v1/publishers", json={"name": name, "namespace": name})
    assert reply.status_code == 201, reply.text
    world.tokens[name] = reply.json()["token"]
    key = world.keys[name] = SigningKey.generate()
    body = {"public_key": base64.b64encode(key.public_bytes).decode()}
    assert client.post("/api/v1/keys", json=body, headers=world.auth(name)).status_code == 201
    for scope in ("publish", "review"):
        made = client.post("/api/v1/tokens", json={"scopes": [scope]}, headers=world.auth(name))
        world.tokens[f"{name}:{scope}"] = made.json()["token"]
    doomed = client.post("/api/v1/tokens", json={}, headers=world.auth(name)).json()
    world.tokens[f"{name}:revoked"] = doomed["token"]
    client.delete(f"/api/v1/tokens/{doomed['id']}", headers=world.auth(name))
    spare = client.post("/api/v1/tokens", json={}, headers=world.auth(name)).json()
    world.ids[f"{name}:spare_token"] = spare["id"]


def _publish_request(world: World, version: str) -> Request:
    archive = valid(name="alice/tool", version=version)
    digest = hashlib.sha256(archive).hexdigest()
    signature = world.keys["alice"].sign_release(digest, "alice/tool", version)
    data = {"signature": base64.b64encode(signature).decode(),
            "key_id": world.keys["alice"].key_id}
    return "POST", "/api/v1/packages", {
        "data": data, "files": {"archive": ("tool.zip", archive, "application/zip")}}


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[[], World]]:
    from fastapi.testclient import TestClient

    from marketplace.server.app import create_app
    from marketplace.server.settings import RateLimit, ServerSettings
    from runs.settings import RunSettings

    clients: list[Any] = []

    def make() -> World:
        home = tmp_path / f"world{len(clients)}"
        settings = ServerSettings(home=home, bootstrap=False, publish_rate=RateLimit(0, 0.0),
                                  review_rate=RateLimit(0, 0.0), runs=RunSettings(workers=1))
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        world = World(client, home)
        for name in ("alice", "bob", "mallory"):
            _register(world, name)
        assert world.call("alice", _publish_request(world, "1.0.0")).status_code == 201
        review = world.call("bob", ("PUT", "/api/v1/packages/alice/tool/reviews",
                                    {"json": {"stars": 4, "body": "fine"}}))
        assert review.status_code == 200, review.text
        world.ids["review"] = review.json()["id"]
        # A spare key of alice (added by rotation), for the revoke-key row.
        spare = SigningKey.generate()
        rotation = world.keys["alice"].sign_rotation(spare.public_bytes, "alice")
        added = world.client.post("/api/v1/keys", headers=world.auth("alice"), json={
            "public_key": base64.b64encode(spare.public_bytes).decode(),
            "rotation_signature": base64.b64encode(rotation).decode(),
            "signed_by": world.keys["alice"].key_id})
        assert added.status_code == 201, added.text
        world.ids["alice:spare_key"] = spare.key_id
        # A finished run of alice's, for the cancel row (finished: nothing changes meanwhile).
        run = world.call("alice", _run_request(world))
        assert run.status_code == 202, run.text
        world.ids["run"] = run.json()["id"]
        done = world.client.get(f"/api/v1/runs/{world.ids['run']}", params={"wait": 60},
                                headers=world.auth("alice"))
        assert done.json()["status"] == "succeeded", done.text
        return world

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _new_key_request(world: World) -> Request:
    key = SigningKey.generate()
    rotation = world.keys["alice"].sign_rotation(key.public_bytes, "alice")
    return "POST", "/api/v1/keys", {"json": {
        "public_key": base64.b64encode(key.public_bytes).decode(),
        "rotation_signature": base64.b64encode(rotation).decode(),
        "signed_by": world.keys["alice"].key_id}}


def _revoke_request(world: World) -> Request:
    """alice's revocation of alice/tool 1.0.0, signed with her key (any caller sends it)."""
    from registry.statements import sign_statement, statement_bytes

    digest = hashlib.sha256(valid(name="alice/tool", version="1.0.0")).hexdigest()
    statement = statement_bytes("alice/tool", "1.0.0", digest, "compromised")
    signature = sign_statement(world.keys["alice"], statement)
    return "POST", f"{RELEASE}/revoke", {"json": {
        "reason": "compromised", "signature": base64.b64encode(signature).decode(),
        "key_id": world.keys["alice"].key_id}}


def _run_request(world: World) -> Request:
    return "POST", "/api/v1/runs", {"json": {"agent": "documentaliste", "input": {"text": "hi"}}}


@dataclass(frozen=True)
class Row:
    """One write operation: who may do it, with which scope, and the request to send."""

    rightful: str | None  # None: open to everyone (registration)
    scope: str | None  # the scope a token needs; None: any valid token of the rightful caller
    build: Callable[[World], Request]
    others_may: bool = False  # any signed-in caller with the scope may do it (e.g. flag)


_SERIAL = itertools.count()
RELEASE = "/api/v1/packages/alice/tool/versions/1.0.0"
YANK = f"{RELEASE}/yank"
ROWS: dict[str, Row] = {
    "POST /api/v1/publishers": Row(None, None, lambda w: (
        "POST", "/api/v1/publishers", {"json": {"name": f"newcomer{next(_SERIAL)}"}})),
    "POST /api/v1/tokens": Row("alice", "publish", lambda w: (
        "POST", "/api/v1/tokens", {"json": {"scopes": ["publish", "review"]}}),
        others_may=True),  # a token for oneself
    "DELETE /api/v1/tokens/{token_id}": Row("alice", None, lambda w: (
        "DELETE", f"/api/v1/tokens/{w.ids['alice:spare_token']}", {})),
    "POST /api/v1/keys": Row("alice", "publish", _new_key_request),
    "DELETE /api/v1/keys/{key_id}": Row("alice", "publish", lambda w: (
        "DELETE", f"/api/v1/keys/{w.ids['alice:spare_key']}", {})),
    "POST /api/v1/packages": Row("alice", "publish", lambda w: _publish_request(w, "2.0.0")),
    "POST /api/v1/packages/{namespace}/{name}/versions/{version}/yank": Row(
        "alice", "publish", lambda w: ("POST", YANK, {"json": {"reason": "broken"}})),
    "DELETE /api/v1/packages/{namespace}/{name}/versions/{version}/yank": Row(
        "alice", "publish", lambda w: ("DELETE", YANK, {})),
    "POST /api/v1/packages/{namespace}/{name}/versions/{version}/deprecate": Row(
        "alice", "publish",
        lambda w: ("POST", f"{RELEASE}/deprecate", {"json": {"reason": "old"}})),
    "DELETE /api/v1/packages/{namespace}/{name}/versions/{version}/deprecate": Row(
        "alice", "publish", lambda w: ("DELETE", f"{RELEASE}/deprecate", {})),
    "POST /api/v1/packages/{namespace}/{name}/versions/{version}/revoke": Row(
        "alice", "publish", _revoke_request),
    "PUT /api/v1/packages/{namespace}/{name}/reviews": Row("bob", "review", lambda w: (
        "PUT", "/api/v1/packages/alice/tool/reviews", {"json": {"stars": 2, "body": "meh"}}),
        others_may=True),  # one's own review
    "DELETE /api/v1/packages/{namespace}/{name}/reviews": Row("bob", "review", lambda w: (
        "DELETE", "/api/v1/packages/alice/tool/reviews", {})),
    "POST /api/v1/reviews/{review_id}/reply": Row("alice", "review", lambda w: (
        "POST", f"/api/v1/reviews/{w.ids['review']}/reply", {"json": {"text": "thanks"}})),
    "POST /api/v1/reviews/{review_id}/flag": Row("bob", "review", lambda w: (
        "POST", f"/api/v1/reviews/{w.ids['review']}/flag", {"json": {"reason": "spam"}}),
        others_may=True),
    "POST /api/v1/runs": Row("alice", "run", _run_request, others_may=True),  # one's own run
    "POST /api/v1/runs/{run_id}/cancel": Row("alice", "run", lambda w: (
        "POST", f"/api/v1/runs/{w.ids['run']}/cancel", {})),
}


def _write_operations(client: Any) -> set[str]:
    spec = client.get("/api/v1/openapi.json").json()
    return {f"{method.upper()} {path}" for path, item in spec["paths"].items()
            for method in item if method in WRITE_METHODS}


def test_every_write_operation_has_a_row(make_world: Callable[[], World]) -> None:
    world = make_world()
    operations = _write_operations(world.client)
    assert operations - set(ROWS) == set(), "write operations without an authorization row"
    assert set(ROWS) - operations == set(), "rows for operations the API no longer has"


def _callers(row: Row) -> list[tuple[str, str | None, set[int]]]:
    """(label, token key, acceptable statuses) in order, the rightful caller last."""
    if row.rightful is None:
        return [("anonymous", None, {201}), ("other publisher", "mallory", {201}),
                ("revoked token", "alice:revoked", {201})]
    callers: list[tuple[str, str | None, set[int]]] = [
        ("anonymous", None, {401}),
        ("revoked token", f"{row.rightful}:revoked", {401}),
    ]
    if row.scope is not None:
        wrong = "review" if row.scope == "publish" else "publish"
        callers.append(("wrong scope", f"{row.rightful}:{wrong}", {403}))
    if not row.others_may:
        callers.append(("other publisher", "mallory", {403, 404}))
    callers.append(("rightful caller", row.rightful, {200, 201, 202, 204}))
    return callers


@pytest.mark.parametrize("operation", sorted(ROWS))
def test_only_the_rightful_caller_succeeds(
    operation: str, make_world: Callable[[], World], figures: Figures
) -> None:
    row = ROWS[operation]
    world = make_world()
    wrong: list[str] = []
    for label, who, expected in _callers(row):
        before = store_fingerprint(world.home)
        response = world.call(who, row.build(world))
        figures.add("authz.cells", 1)
        if response.status_code not in expected:
            wrong.append(f"{label}: {response.status_code} {response.text[:200]}")
        elif response.status_code >= 400:
            body = response.json()
            assert response.headers["content-type"].startswith("application/problem+json")
            assert body["status"] == response.status_code and body["code"], body
            if store_fingerprint(world.home) != before:
                wrong.append(f"{label}: refused, yet the store changed")
    assert not wrong, f"{operation}:\n" + "\n".join(wrong)

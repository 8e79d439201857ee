"""The audit trail and request ids, as a client sees them.

In-process (`TestClient`): `X-Request-ID` on every kind of answer, hostile ids replaced, the
`/api/v1/audit` filters, refusals recorded, who sees what. End to end (a real `agentfactory
serve`, the CLI with `AGENTFACTORY_REQUEST_ID`): publish, install, run and review under ONE
correlation id, then `agentfactory audit` shows that trail, to each account its part.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.marketplace.cli_runner import run_cli
from tests.marketplace.conftest import Actor, make_package, register

GENERATED = re.compile(r"[0-9a-f]{32}")


def events(client: Any, actor: Actor | None = None, **params: Any) -> list[dict[str, Any]]:
    headers = actor.auth if actor else {}
    answer = client.get("/api/v1/audit", params={"per_page": 200, **params}, headers=headers)
    assert answer.status_code == 200, answer.text
    return list(reversed(answer.json()["items"]))


def brief(items: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(e["actor"], e["action"], e["object_id"], e["outcome"]) for e in items]


def admin(client: Any, name: str = "ops") -> Actor:
    operator = register(client, name)
    operator.token = client.app.state.market.registry.operator_token(name)
    return operator


@pytest.mark.parametrize("hostile", [
    b"abc\r\nSet-Cookie: session=stolen", b"x" * 10_240, "été".encode(), b"two words", b"",
])
def test_a_hostile_request_id_is_replaced_never_echoed(api: Any, hostile: bytes) -> None:
    answer = api.get("/api/v1/packages", headers={"X-Request-ID": hostile})
    assert answer.status_code == 200
    assert GENERATED.fullmatch(answer.headers["x-request-id"])
    assert "set-cookie" not in answer.headers


def test_every_answer_carries_the_request_id(make_app: Any, tmp_path: Path) -> None:
    api = make_app(raise_server_exceptions=False)
    acme = register(api, "acme")
    archive = make_package(tmp_path)
    assert acme.publish(archive, "acme/summarizer", "1.0.0").status_code == 201

    def boom() -> None:
        raise RuntimeError("a bug")

    api.app.add_api_route("/boom", boom)
    cases = {
        "json": ("GET", "/api/v1/packages/acme/summarizer"),  # computed, then cached
        "cached fast path": ("GET", "/api/v1/packages/acme/summarizer"),
        "problem": ("GET", "/api/v1/packages/acme/nothing"),
        "web page": ("GET", "/"),
        "413": ("POST", "/api/v1/publishers"),
        "500": ("GET", "/boom"),
    }
    for case, (method, path) in cases.items():
        request_id = f"case-{case.replace(' ', '-')}"
        content = b"{" + b" " * 2_000_000 + b"}" if case == "413" else None
        answer = api.request(method, path, headers={"X-Request-ID": request_id}, content=content)
        assert answer.headers["x-request-id"] == request_id, (case, answer.status_code)
    assert answer.status_code == 500
    fresh = api.get("/healthz").headers["x-request-id"]
    assert GENERATED.fullmatch(fresh)


def test_refused_writes_are_recorded_and_each_account_sees_its_own(
    api: Any, tmp_path: Path
) -> None:
    acme, bob = register(api, "acme"), register(api, "bob")
    archive = make_package(tmp_path)
    headers = {"X-Request-ID": "publish-twice"}
    assert acme.publish(archive, "acme/summarizer", "1.0.0").status_code == 201
    again = acme.publish(archive, "acme/summarizer", "1.0.0", headers={**acme.auth, **headers})
    assert again.status_code == 409
    assert again.headers["x-request-id"] == "publish-twice"
    review = {"stars": 5, "title": "great", "body": "works"}
    assert api.put("/api/v1/packages/acme/summarizer/reviews", json=review,
                   headers=bob.auth).status_code == 200
    yank = api.post("/api/v1/packages/acme/summarizer/versions/1.0.0/yank", json={"reason": "mine"},
                    headers=bob.auth)
    assert yank.status_code == 403

    assert brief(events(api, acme, correlation_id="publish-twice")) == [
        ("acme", "package.publish", "acme/summarizer@1.0.0", "refused:DuplicateRelease"),
    ]
    acme_sees = brief(events(api, acme))
    assert ("bob", "review.write", "acme/summarizer", "ok") in acme_sees
    assert ("bob", "release.yank", "acme/summarizer@1.0.0", "refused:PermissionDenied") in acme_sees
    assert ("bob", "key.add") not in {(a, b) for a, b, _, _ in acme_sees}
    bob_sees = brief(events(api, bob))
    assert {actor for actor, *_ in bob_sees} == {"bob"}
    assert brief(events(api, acme, action="review.write", object="acme/summarizer")) == [
        ("bob", "review.write", "acme/summarizer", "ok"),
    ]

    everything = brief(events(api, admin(api)))
    assert set(acme_sees) | set(bob_sees) < set(everything)
    assert api.get("/api/v1/audit").status_code == 401


@pytest.mark.parametrize("params", [
    {"action": "package.delete"}, {"object": "a\x00b"}, {"correlation_id": "x" * 129},
    {"since": "not a time"}, {"per_page": 0}, {"page": 10_001},
    {"until": "9999-12-31T23:59:59-23:59"},
])
def test_hostile_filters_are_refused_with_a_problem(api: Any, params: dict[str, Any]) -> None:
    acme = register(api, "acme")
    answer = api.get("/api/v1/audit", params=params, headers=acme.auth)
    assert answer.status_code in (400, 422), answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


# ------------------------------------------------------------------------------- end to end


@pytest.mark.e2e
@pytest.mark.sandbox
def test_publish_install_run_review_under_one_correlation_id(
    live_server: Any, tmp_path: Path
) -> None:
    trail_id = f"trail-{uuid.uuid4().hex}"

    def user(who: str) -> dict[str, str]:
        home = tmp_path / who
        home.mkdir()
        return {"AGENTFACTORY_HOME": str(home), "AGENTFACTORY_URL": str(live_server),
                "AGENTFACTORY_TOKEN": "", "AGENTFACTORY_REQUEST_ID": trail_id}

    alice, bob, ops = user("alice"), user("bob"), user("ops")
    key_id = run_cli(alice, "keygen", "--json").ok().json()["key_id"]
    run_cli(alice, "register", "alice", "--namespace", "alice").ok()
    run_cli(alice, "init", str(tmp_path / "pkg"), "--name", "alice/word-count").ok()
    run_cli(alice, "publish", str(tmp_path / "pkg")).ok()
    run_cli(bob, "register", "bob").ok()
    run_cli(bob, "install", "alice/word-count").ok()
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"text": "Call me at +1 555 0100. The API key is sk-abc123."}))
    ran = run_cli(bob, "run", "redact_and_summarize", "--input", str(task), "--remote",
                  "--json").ok().json()
    assert ran["status"] == "succeeded"
    run_cli(bob, "rate", "alice/word-count", "4", "--review", "counts well").ok()

    run_cli(ops, "register", "ops").ok()
    minted = run_cli({**ops, "AGENTFACTORY_HOME": str(live_server.home)},
                     "admin", "token", "ops")
    ops["AGENTFACTORY_TOKEN"] = minted.ok().out.strip()

    def trail(env: dict[str, str]) -> list[tuple[str, str, str, str]]:
        page = run_cli(env, "audit", "--correlation-id", trail_id, "--per-page", "200",
                       "--json").ok().json()
        assert all(e["correlation_id"] == trail_id for e in page["items"])
        return [(e["actor"], e["action"], e["object_id"], e["outcome"])
                for e in reversed(page["items"])]

    run_id = ran["id"]
    everything = trail(ops)
    # A download is the downloader's when the server identifies it (a token), else anonymous.
    downloader = next(actor for actor, action, *_ in everything if action == "release.download")
    assert downloader in ("bob", "anonymous", "system")
    assert everything[:-2] == [
        ("alice", "account.register", "alice", "ok"),
        ("alice", "key.add", key_id, "ok"),
        ("alice", "key.add", key_id, "refused:Conflict"),  # publish makes sure it is there
        ("alice", "package.publish", "alice/word-count@1.0.0", "ok"),
        ("bob", "account.register", "bob", "ok"),
        (downloader, "release.download", "alice/word-count@1.0.0", "ok"),
        ("bob", "run.submit", run_id, "ok"),
        ("system", "run.start", run_id, "ok"),
        ("system", "step.finish", f"{run_id}/mask", "ok"),
        ("system", "step.finish", f"{run_id}/summarize", "ok"),
        ("system", "run.finish", run_id, "ok"),
        ("bob", "review.write", "alice/word-count", "ok"),
    ]
    assert [(actor, action) for actor, action, *_ in everything[-2:]] == [
        ("ops", "account.register"), ("system", "token.create")]
    alice_sees, bob_sees = trail(alice), trail(bob)
    assert ("bob", "review.write", "alice/word-count", "ok") in alice_sees
    assert (downloader, "release.download", "alice/word-count@1.0.0", "ok") in alice_sees
    assert not any(object_id.startswith(run_id) for _, _, object_id, _ in alice_sees)
    assert ("system", "run.finish", run_id, "ok") in bob_sees
    assert not any(actor == "alice" for actor, *_ in bob_sees)
    shown = run_cli(bob, "audit", "--object", run_id).ok().out
    assert "run.finish" in shown and "step.finish" in shown and trail_id in shown

"""Rate limits belong to the account, not the token; minting tokens has its own budget; the
client address used for sign-up limits cannot be picked by the client.

Everything goes through the real app (`create_app` under `TestClient`) with a hand-driven clock:
nothing sleeps. Several tokens of one account, and several spellings of the forwarding headers,
are tried against each budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketplace.server.app import create_app
from marketplace.server.settings import RateLimit, ServerSettings
from tests.marketplace.conftest import Actor, FakeClock, make_package, register

REVIEWS = "/api/v1/packages/acme/summarizer/reviews"
TOKENS = "/api/v1/tokens"


def mint(actor: Actor, count: int, scopes: tuple[str, ...] = ("publish", "review")) -> list[Actor]:
    """`count` more tokens of `actor`'s account, each as an Actor sharing its signing key."""
    minted = []
    for _ in range(count):
        made = actor.client.post(TOKENS, json={"scopes": list(scopes)}, headers=actor.auth)
        assert made.status_code == 201, made.text
        minted.append(Actor(actor.client, actor.name, made.json()["token"], actor.key))
    return minted


def assert_rate_limited(response: Any, retry_after: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == str(retry_after)
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 429 and problem["code"] == "RateLimited"


# ------------------------------------------------------------------------ per-account budgets


def test_fresh_tokens_do_not_reset_the_publish_budget(
    make_app: Callable[..., Any], clock: FakeClock, tmp_path: Path
) -> None:
    api = make_app(publish_rate=RateLimit(3, 3 / 60), vet_uploads=False)  # 3 a minute
    acme = register(api, "acme")
    tokens = mint(acme, 5)
    answers = []
    for i, actor in enumerate([acme, *tokens]):  # a new token for every attempt
        version = f"1.0.{i}"
        answers.append(actor.publish(make_package(tmp_path, version=version),
                                     "acme/summarizer", version))
    assert [a.status_code for a in answers] == [201, 201, 201, 429, 429, 429]
    assert_rate_limited(answers[3], 20)
    released = api.get("/api/v1/packages/acme/summarizer/versions").json()
    assert [r["version"] for r in released] == ["1.0.0", "1.0.1", "1.0.2"]
    # Another account keeps its own budget; the clock, not a new token, earns one back.
    other = register(api, "other")
    assert other.publish(make_package(tmp_path, "other/tool"), "other/tool", "1.0.0"
                         ).status_code == 201
    clock.advance(20)
    late = tokens[-1].publish(make_package(tmp_path, version="1.0.9"), "acme/summarizer", "1.0.9")
    assert late.status_code == 201


def test_reviews_replies_and_flags_share_one_account_budget_across_tokens(
    make_app: Callable[..., Any], clock: FakeClock, tmp_path: Path
) -> None:
    api = make_app(review_rate=RateLimit(4, 4 / 60), vet_uploads=False)
    acme = register(api, "acme")
    assert acme.publish(make_package(tmp_path), "acme/summarizer", "1.0.0").status_code == 201
    bob = register(api, "bob")
    bob_tokens = mint(bob, 5, ("review",))
    for stars, actor in zip((1, 2, 3, 4), [bob, *bob_tokens], strict=False):
        assert api.put(REVIEWS, json={"stars": stars}, headers=actor.auth).status_code == 200
    for actor in bob_tokens[3:]:  # the 5th and 6th attempt, each with a token never used
        assert_rate_limited(api.put(REVIEWS, json={"stars": 5}, headers=actor.auth), 15)
    assert api.get(REVIEWS).json()["items"][0]["stars"] == 4  # the refused writes changed nothing
    review_id = api.get(REVIEWS).json()["items"][0]["id"]

    # acme spends its own budget replying with fresh tokens; flagging draws on the same budget.
    acme_tokens = mint(acme, 5, ("review",))
    path = f"/api/v1/reviews/{review_id}"
    assert api.post(f"{path}/reply", json={"text": "thanks"}, headers=acme.auth
                    ).status_code == 200
    flags = [api.post(f"{path}/flag", json={"reason": "spam"}, headers=actor.auth).status_code
             for actor in acme_tokens[:3]]
    assert flags == [200, 200, 200]  # flagging again is idempotent, and still spends budget
    assert_rate_limited(
        api.post(f"{path}/reply", json={"text": "again"}, headers=acme_tokens[3].auth), 15
    )
    assert_rate_limited(
        api.post(f"{path}/flag", json={"reason": "x"}, headers=acme_tokens[4].auth), 15
    )
    assert api.get(REVIEWS).json()["items"][0]["reply"] == "thanks"


def test_the_web_form_spends_the_same_account_budget_as_the_api(
    make_app: Callable[..., Any], tmp_path: Path
) -> None:
    api = make_app(review_rate=RateLimit(2, 2 / 60), vet_uploads=False)
    acme = register(api, "acme")
    assert acme.publish(make_package(tmp_path), "acme/summarizer", "1.0.0").status_code == 201
    bob = register(api, "bob")
    other_token = mint(bob, 1, ("review",))[0]
    for stars in (3, 4):
        assert api.put(REVIEWS, json={"stars": stars}, headers=bob.auth).status_code == 200
    # Signed in on the web with a different token of the same account: no budget left either.
    page = api.get("/login", headers={"accept": "text/html"})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    signed_in = api.post("/login", data={"csrf_token": csrf.group(1), "token": other_token.token},
                         follow_redirects=False)
    assert signed_in.status_code == 303
    form = api.get("/packages/acme/summarizer", headers={"accept": "text/html"}).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    refused = api.post("/packages/acme/summarizer/reviews",
                       data={"csrf_token": csrf.group(1), "stars": "1"}, follow_redirects=False)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert "Too many requests" in refused.text
    assert api.get(REVIEWS).json()["items"][0]["stars"] == 4


# ---------------------------------------------------------------------------- token minting


def test_minting_tokens_has_a_budget_of_its_own_per_account(
    make_app: Callable[..., Any], clock: FakeClock
) -> None:
    api = make_app(token_rate=RateLimit(10, 10 / 3600))  # the default: 10 an hour
    acme = register(api, "acme")
    minted = mint(acme, 3)
    # Every token of the account draws on one budget, whichever mints, revoked ones included.
    for actor in (minted[0], minted[1], minted[2], acme, acme, minted[0]):
        assert api.post(TOKENS, json={}, headers=actor.auth).status_code == 201
    revoked_id = api.post(TOKENS, json={}, headers=acme.auth).json()["id"]  # the 10th
    assert api.delete(f"{TOKENS}/{revoked_id}", headers=acme.auth).status_code == 204
    for actor in (acme, minted[2]):
        assert_rate_limited(api.post(TOKENS, json={}, headers=actor.auth), 360)
    # Refused attempts minted nothing: the account holds 1 + 3 + 6 + 1 tokens.
    registry = api.app.state.market.registry
    assert len(registry.tokens(registry.authenticate(acme.token))) == 11
    # Registration is the other way to get a token; it stays limited per address, not here.
    bob = register(api, "bob")
    assert api.post(TOKENS, json={}, headers=bob.auth).status_code == 201
    clock.advance(360)
    assert api.post(TOKENS, json={}, headers=minted[2].auth).status_code == 201
    assert_rate_limited(api.post(TOKENS, json={}, headers=acme.auth), 360)


def test_minting_is_refused_before_scopes_are_looked_at_and_bad_tokens_spend_nothing(
    make_app: Callable[..., Any],
) -> None:
    api = make_app(token_rate=RateLimit(2, 2 / 3600))
    acme = register(api, "acme")
    review_only = mint(acme, 1, ("review",))[0]
    # An escalation attempt is refused (403) and still counts: a token cannot be brute-forced
    # into scopes it lacks at no cost.
    escalation = api.post(TOKENS, json={"scopes": ["admin"]}, headers=review_only.auth)
    assert escalation.status_code == 403
    assert_rate_limited(api.post(TOKENS, json={}, headers=acme.auth), 1800)
    # A wrong token is refused at authentication and drains nobody's budget.
    other = register(api, "other")
    for _ in range(5):
        wrong = api.post(TOKENS, json={}, headers={"Authorization": "Bearer afr_nope"})
        assert wrong.status_code == 401
    assert api.post(TOKENS, json={}, headers=other.auth).status_code == 201


# ---------------------------------------------------------------------- client addresses


@pytest.fixture
def proxied(tmp_path: Path, clock: FakeClock) -> Iterator[Callable[..., Callable[..., Any]]]:
    """`proxied(**settings)` starts an app; the function it returns makes a `TestClient` whose
    socket peer is the given address (all clients share the started app)."""
    started: list[TestClient] = []

    def start(**overrides: Any) -> Callable[..., Any]:
        values: dict[str, Any] = {
            "home": tmp_path / f"home{len(started)}", "bootstrap": False, "clock": clock,
            "register_rate": RateLimit(1, 1 / 3600),
        }
        values.update(overrides)
        app: FastAPI = create_app(ServerSettings(**values))
        main = TestClient(app)
        main.__enter__()  # runs the lifespan once; peers below reuse its state
        started.append(main)

        def peer(address: str) -> TestClient:
            return TestClient(app, client=(address, 40000))

        return peer

    yield start
    for client in started:
        client.__exit__(None, None, None)


def sign_up(client: TestClient, name: str, headers: dict[str, str] | None = None) -> int:
    answer = client.post("/api/v1/publishers", json={"name": name}, headers=headers or {})
    status: int = answer.status_code
    if status == 429:
        assert_rate_limited(answer, 3600)
    return status


SPOOFS: list[dict[str, str]] = [
    {"X-Forwarded-For": "198.51.100.1"},
    {"X-Forwarded-For": "198.51.100.2, 198.51.100.3"},
    {"Forwarded": "for=198.51.100.4"},
    {"Forwarded": 'for="[2001:db8::4]:80";proto=https'},
    {"X-Real-IP": "198.51.100.5"},
    {"X-Forwarded-For": "10.0.0.1", "X-Real-IP": "127.0.0.1", "Forwarded": "for=10.0.0.2"},
]


def test_forwarding_headers_from_an_untrusted_peer_are_ignored(
    proxied: Callable[..., Callable[..., Any]],
) -> None:
    peer = proxied()  # no trusted proxies: the default
    attacker = peer("203.0.113.7")
    assert sign_up(attacker, "first") == 201
    for i, spoof in enumerate(SPOOFS):
        assert sign_up(attacker, f"spoof{i}", spoof) == 429, spoof
    # Even a peer that *is* a proxy's address is not believed until the operator names it.
    lan = peer("10.0.0.2")
    assert sign_up(lan, "lan") == 201
    assert sign_up(lan, "lan2", {"X-Forwarded-For": "198.51.100.9"}) == 429
    assert sign_up(peer("203.0.113.8"), "neighbour") == 201  # other addresses are unaffected
    listed = [f"spoof{i}" for i in range(len(SPOOFS))] + ["lan2"]
    for name in listed:
        assert attacker.get(f"/api/v1/publishers/{name}").status_code == 404


def test_a_trusted_proxy_is_believed_right_most_untrusted_hop_first(
    proxied: Callable[..., Callable[..., Any]],
) -> None:
    from marketplace.server.settings import parse_networks

    peer = proxied(trusted_proxies=parse_networks("10.0.0.0/8, 2001:db8:ffff::1"))
    proxy = peer("10.0.0.2")
    # The client 198.51.100.1 behind the proxy (and an inner trusted hop), in three spellings.
    assert sign_up(proxy, "first", {"X-Forwarded-For": "198.51.100.1, 10.1.2.3"}) == 201
    for name, headers in [
        ("again1", {"X-Forwarded-For": "6.6.6.6, 198.51.100.1"}),  # the client's own prefix
        ("again2", {"X-Forwarded-For": "6.6.6.6", "x-forwarded-for": "198.51.100.1"}),
        ("again3", {"Forwarded": 'for=6.6.6.6, for="198.51.100.1:4711";by=10.0.0.2'}),
        ("again4", {"X-Real-IP": "198.51.100.1"}),
        ("again5", {"X-Forwarded-For": "::ffff:198.51.100.1"}),
    ]:
        assert sign_up(proxy, name, headers) == 429, headers
    # Other clients behind the same proxy have their own budgets.
    assert sign_up(proxy, "second", {"X-Forwarded-For": "198.51.100.2"}) == 201
    assert sign_up(proxy, "third", {"Forwarded": "for=198.51.100.3"}) == 201
    # An IPv6 client is one /64, however it rotates its interface id; a trusted v6 proxy works.
    v6 = peer("2001:db8:ffff::1")
    assert sign_up(v6, "six", {"X-Forwarded-For": "2001:db8:1:2::1"}) == 201
    assert sign_up(v6, "six2", {"X-Forwarded-For": "2001:db8:1:2:dead:beef:0:1"}) == 429
    # Headers that disagree name no one: the request counts as the proxy's own.
    assert sign_up(proxy, "mixed", {"X-Forwarded-For": "198.51.100.7",
                                    "X-Real-IP": "198.51.100.8"}) == 201
    assert sign_up(proxy, "proxyself") == 429  # the proxy's own address, already spent

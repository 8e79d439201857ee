"""Concurrency: 32 clients mixing publish, review, download and install against one server.

Each client (a thread with its own publisher, token and `httpx.Client`) runs a seeded random
mix of operations, bounded in count and by a deadline. Contention is deliberate: every client
also holds a token of the shared publisher and races the others to publish `shared/pkg` at a
handful of versions, and every client reviews packages the others review too.

After the run, through the API and in the SQLite file (a read-only snapshot):
no 5xx and no transport error; each contested version published exactly once (one 201, the
rest 409); every acknowledged review is there exactly once with the stars its last write set;
each package's rating aggregates equal a recomputation from the raw review rows; download
counts equal the number of distinct releases the clients downloaded (every client calls from
127.0.0.1 without a token, and a client counts once per release per day).
"""

from __future__ import annotations

import base64
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from marketplace.client.http import MarketplaceClient
from marketplace.client.installer import Installer
from marketplace.client.lockfile import VettingSummary
from registry.archive import Package
from registry.signing import SigningKey
from tests.marketplace.conftest import LiveServer
from tests.reliability.conftest import Figures
from tests.reliability.corpus import valid
from tests.signing import sign_archive

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

CLIENTS = 32
ANONYMOUS = "anonymous"
OPS_PER_CLIENT = 12
DEADLINE_S = 60.0  # a bound, not an expectation: the run normally takes a few seconds
CONTESTED = ["2.0.0", "2.1.0", "2.2.0", "2.3.0"]


@dataclass
class Client:
    index: int
    http: httpx.Client
    token: str
    key: SigningKey
    shared_token: str
    shared_key: SigningKey
    home: Path
    own_versions: int = 1
    reviews: dict[str, int] = field(default_factory=dict)  # package -> last acknowledged stars
    # (package, version, who) fetched; who is the account, or ANONYMOUS
    downloads: set[tuple[str, str, str]] = field(default_factory=set)
    contested: list[tuple[str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)

    @property
    def name(self) -> str:
        return f"client{self.index}"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _publish(http: httpx.Client, token: str, key: SigningKey, name: str, version: str,
             summary: str = "Summarizes text") -> httpx.Response:
    archive = valid(name=name, version=version, summary=summary)
    signature = sign_archive(key, archive, name, version)
    return http.post("/api/v1/packages", headers=_auth(token), files={
        "archive": ("pkg.zip", archive, "application/zip")},
        data={"signature": base64.b64encode(signature).decode(), "key_id": key.key_id})


def _register(http: httpx.Client, name: str) -> tuple[str, SigningKey]:
    reply = http.post("/api/v1/publishers", json={"name": name, "namespace": name})
    assert reply.status_code == 201, reply.text
    token: str = reply.json()["token"]
    key = SigningKey.generate()
    added = http.post("/api/v1/keys", headers=_auth(token),
                      json={"public_key": base64.b64encode(key.public_bytes).decode()})
    assert added.status_code == 201, added.text
    return token, key


def _accept(package: Package) -> VettingSummary:
    return VettingSummary(passed=True, status="unvetted")


def _step(client: Client, rng: random.Random, server: str) -> None:
    op = rng.choice(["publish", "contest", "review", "review", "download", "download",
                     "install"])
    client.ops[op] += 1
    other = f"client{rng.choice([i for i in range(CLIENTS) if i != client.index])}/pkg"
    if op == "publish":
        version = f"1.{client.own_versions}.0"
        response = _publish(client.http, client.token, client.key, f"{client.name}/pkg", version)
        if response.status_code == 201:
            client.own_versions += 1
    elif op == "contest":
        version = rng.choice(CONTESTED)
        # Each client's bytes differ (summary), so the race is on the version, not the digest.
        response = _publish(client.http, client.shared_token, client.shared_key, "shared/pkg",
                            version, summary=f"Summarizes text, by {client.name}")
        client.contested.append((version, response.status_code))
    elif op == "review":
        # A review counts once its author downloaded the version (verified reviews): download
        # it signed in first, which counts once more, for this account.
        fetched = client.http.get(f"/api/v1/packages/{other}/versions/1.0.0/download",
                                  headers=_auth(client.token))
        if fetched.status_code == 200:
            client.downloads.add((other, "1.0.0", client.name))
        stars = rng.randint(1, 5)
        response = client.http.put(f"/api/v1/packages/{other}/reviews", headers=_auth(
            client.token), json={"stars": stars, "body": f"{client.name} says {stars}"})
        if response.status_code == 200:
            client.reviews[other] = stars
    elif op == "download":
        response = client.http.get(f"/api/v1/packages/{other}/versions/1.0.0/download")
        if response.status_code == 200:
            client.downloads.add((other, "1.0.0", ANONYMOUS))
    else:
        # A fresh home per install, so every install really downloads.
        home = client.home / f"install{sum(client.ops.values())}"
        with MarketplaceClient(server) as market:
            result = Installer(market, home, vetter=_accept).install(other)
        client.downloads.update(
            (entry.name, entry.version, ANONYMOUS) for entry in result.installed)
        return
    if response.status_code >= 500:
        client.errors.append(f"{op}: {response.status_code} {response.text[:200]}")


def _run(client: Client, server: str, deadline: float) -> None:
    rng = random.Random(client.index)
    try:
        for _ in range(OPS_PER_CLIENT):
            if time.monotonic() > deadline:
                break
            _step(client, rng, server)
    except Exception as exc:  # reported by the test, with the client that hit it
        client.errors.append(f"{type(exc).__name__}: {exc}")


def _database_checks(db: Path) -> list[str]:
    problems = []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        for row in conn.execute(
            "SELECT p.normalized_name, p.review_count, p.stars_sum, p.stars_1, p.stars_2, "
            "p.stars_3, p.stars_4, p.stars_5, "
            "(SELECT count(*) FROM review r WHERE r.package_id = p.id AND r.verified), "
            "(SELECT coalesce(sum(stars), 0) FROM review r WHERE r.package_id = p.id "
            "AND r.verified) FROM package p"
        ):
            name, count, total, *histogram, raw_count, raw_sum = row
            raw_histogram = [conn.execute(
                "SELECT count(*) FROM review r JOIN package p ON p.id = r.package_id "
                "WHERE p.normalized_name = ? AND r.stars = ? AND r.verified",
                (name, s)).fetchone()[0]
                for s in range(1, 6)]
            if (count, total, histogram) != (raw_count, raw_sum, raw_histogram):
                problems.append(f"{name}: aggregates {count}/{total}/{histogram} != rows "
                                f"{raw_count}/{raw_sum}/{raw_histogram}")
        dupes = conn.execute("SELECT package_id, reviewer_id, count(*) FROM review "
                             "GROUP BY package_id, reviewer_id HAVING count(*) > 1").fetchall()
        problems += [f"duplicate review rows {d}" for d in dupes]
    conn.close()
    return problems


def test_many_clients_at_once_lose_and_duplicate_nothing(
    live_server_factory: Callable[..., LiveServer], figures: Figures, tmp_path: Path
) -> None:
    # Budgets off, and one vetting slot per client: the contested publishes share one account,
    # and the per-account vetting cap (tested in test_vetting_attack) would answer them 429.
    server = live_server_factory(AGENTFACTORY_BOOTSTRAP="0", AGENTFACTORY_PUBLISH_RATE="0",
                                 AGENTFACTORY_REVIEW_RATE="0", AGENTFACTORY_TOKEN_RATE="0",
                                 AGENTFACTORY_VET_PER_PUBLISHER="64",
                                 AGENTFACTORY_VET_CONCURRENCY="64")
    setup = httpx.Client(base_url=server, timeout=60.0)
    shared_token, shared_key = _register(setup, "shared")
    clients: list[Client] = []
    for i in range(CLIENTS):
        token, key = _register(setup, f"client{i}")
        assert _publish(setup, token, key, f"client{i}/pkg", "1.0.0").status_code == 201
        made = setup.post("/api/v1/tokens", json={}, headers=_auth(shared_token))
        http = httpx.Client(base_url=server, timeout=60.0)
        clients.append(Client(i, http, token, key, made.json()["token"], shared_key,
                              tmp_path / f"c{i}"))
    started = time.monotonic()
    deadline = started + DEADLINE_S
    threads = [threading.Thread(target=_run, args=(c, server, deadline)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    errors = [f"client{c.index}: {e}" for c in clients for e in c.errors]
    assert not errors, "\n".join(errors[:20])
    # Each contested version: exactly one winner, every loser told 409; listed once.
    outcomes: dict[str, Counter[int]] = {}
    for client in clients:
        for version, status in client.contested:
            outcomes.setdefault(version, Counter())[status] += 1
    for version, statuses in outcomes.items():
        assert statuses[201] == 1 and set(statuses) <= {201, 409}, (version, statuses)
    listed = [r["version"] for r in setup.get("/api/v1/packages/shared/pkg/versions").json()
              ] if outcomes else []
    assert sorted(listed) == sorted(outcomes), listed
    # Reviews: exactly the acknowledged ones, with their last stars; ratings add up.
    for target in {f"client{i}/pkg" for i in range(CLIENTS)}:
        expected = {c.name: c.reviews[target] for c in clients if target in c.reviews}
        page = setup.get(f"/api/v1/packages/{target}/reviews?per_page=100").json()
        got = {item["reviewer"]: item["stars"] for item in page["items"]}
        assert got == expected and page["total"] == len(expected), target
        rating = setup.get(f"/api/v1/packages/{target}/rating").json()
        assert rating["count"] == len(expected)
        for stars in range(1, 6):
            assert rating["histogram"][str(stars)] == list(expected.values()).count(stars)
        # Downloads count once per client per release a day: every anonymous request comes from
        # one address here, each signed-in one from its account.
        downloads = len({(version, who) for c in clients
                         for name, version, who in c.downloads if name == target})
        assert setup.get(f"/api/v1/packages/{target}").json()["downloads"] == downloads
    setup.close()
    for client in clients:
        client.http.close()

    figures.record("concurrency.clients", CLIENTS)
    figures.record("concurrency.operations", sum(sum(c.ops.values()) for c in clients))
    figures.record("concurrency.seconds", elapsed)
    contested = sum(sum(c.values()) for c in outcomes.values())
    figures.record("concurrency.contested_publishes", contested)
    db_problems = _database_checks(server.home / "registry.db")
    assert not db_problems, db_problems

"""Crash safety: kill -9 the server during publishes and review writes, many times.

Each round starts `agentfactory serve` on the same home, runs writer threads (publishes of new
versions, review writes), and SIGKILLs the server once a seeded random number of requests have
been answered, so the kill lands while other requests are in flight. After the last round:

- every release the server acknowledged (201) is still there: an answer means committed;
- every release row has its blob, with the right sha256 and size (no half-written release);
- after `Registry.cleanup_blobs()` no blob is left that no release refers to;
- `PRAGMA integrity_check` is ok and `PRAGMA foreign_key_check` finds nothing;
- review aggregates equal a recomputation from the review rows;
- the server starts again and answers.
"""

from __future__ import annotations

import base64
import hashlib
import random
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from registry.service import Registry
from registry.signing import SigningKey
from tests.marketplace.conftest import start_server, stop_server
from tests.reliability.conftest import Figures
from tests.reliability.corpus import valid
from tests.reliability.test_concurrency import _database_checks
from tests.signing import sign_archive

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

ROUNDS = 15
WRITERS = 4
MAX_REQUESTS_PER_ROUND = 40
ENV = {"AGENTFACTORY_BOOTSTRAP": "0", "AGENTFACTORY_PUBLISH_RATE": "0",
       "AGENTFACTORY_REVIEW_RATE": "0"}


@dataclass
class Round:
    url: str
    kill_after: int
    answered: int = 0
    acknowledged: list[str] = field(default_factory=list)  # versions answered 201
    lock: threading.Lock = field(default_factory=threading.Lock)
    killed: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)  # 5xx answers before the kill


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _writer(state: Round, index: int, round_no: int, keys: dict[str, tuple[str, SigningKey]],
            kill: threading.Event) -> None:
    token, key = keys["owner"]
    reviewer_token = keys[f"reviewer{index}"][0]
    rng = random.Random(round_no * 100 + index)
    with httpx.Client(base_url=state.url, timeout=30.0) as http:
        for n in range(MAX_REQUESTS_PER_ROUND):
            if state.killed.is_set():
                return
            try:
                if rng.random() < 0.5:
                    version = f"{round_no + 1}.{index}.{n}"
                    # Padding makes the blob write take long enough to be interrupted.
                    archive = valid(name="owner/pkg", version=version, pad_to=200_000)
                    signature = sign_archive(key, archive, "owner/pkg", version)
                    response = http.post("/api/v1/packages", headers=_auth(token), files={
                        "archive": ("p.zip", archive, "application/zip")}, data={
                        "signature": base64.b64encode(signature).decode(),
                        "key_id": key.key_id})
                    if response.status_code == 201:
                        with state.lock:
                            state.acknowledged.append(version)
                else:
                    response = http.put("/api/v1/packages/owner/pkg/reviews",
                                        headers=_auth(reviewer_token),
                                        json={"stars": rng.randint(1, 5), "body": "x" * 500})
            except httpx.TransportError:
                return  # the server is gone: the kill happened
            if response.status_code >= 500:
                state.errors.append(f"{response.status_code} {response.text[:200]}")
            with state.lock:
                state.answered += 1
                if state.answered >= state.kill_after:
                    kill.set()


def _setup(url: str) -> dict[str, tuple[str, SigningKey]]:
    keys: dict[str, tuple[str, SigningKey]] = {}
    with httpx.Client(base_url=url, timeout=30.0) as http:
        for name in ["owner", *(f"reviewer{i}" for i in range(WRITERS))]:
            reply = http.post("/api/v1/publishers", json={"name": name, "namespace": name})
            token = reply.json()["token"]
            key = SigningKey.generate()
            http.post("/api/v1/keys", headers=_auth(token),
                      json={"public_key": base64.b64encode(key.public_bytes).decode()})
            keys[name] = (token, key)
        archive = valid(name="owner/pkg", version="0.1.0")
        token, key = keys["owner"]
        signature = sign_archive(key, archive, "owner/pkg", "0.1.0")
        published = http.post("/api/v1/packages", headers=_auth(token), files={
            "archive": ("p.zip", archive, "application/zip")}, data={
            "signature": base64.b64encode(signature).decode(), "key_id": key.key_id})
        assert published.status_code == 201, published.text
        # Each reviewer downloads the release first, so their reviews are verified: they make
        # the rating aggregates the store check recomputes.
        for index in range(WRITERS):
            fetched = http.get("/api/v1/packages/owner/pkg/versions/0.1.0/download",
                               headers=_auth(keys[f"reviewer{index}"][0]))
            assert fetched.status_code == 200, fetched.text
    return keys


def _check_store(home: Path, acknowledged: list[str]) -> tuple[list[str], int]:
    problems: list[str] = []
    db = home / "registry.db"
    with sqlite3.connect(db) as conn:
        if (ok := conn.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
            problems.append(f"integrity_check: {ok}")
        problems += [f"foreign key: {row}" for row in conn.execute("PRAGMA foreign_key_check")]
        releases = conn.execute("SELECT version, digest, size FROM release").fetchall()
    conn.close()
    present = {version for version, _, _ in releases}
    problems += [f"acknowledged {v} lost" for v in acknowledged if v not in present]
    registry = Registry.open(home)
    try:
        removed = registry.cleanup_blobs()
        for version, digest, size in releases:
            try:
                data = registry.blobs.get(digest)
            except Exception as exc:
                problems.append(f"release {version}: blob {digest[:12]} unreadable: {exc}")
                continue
            if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
                problems.append(f"release {version}: blob size or digest wrong")
        orphans = set(registry.blobs.digests()) - {digest for _, digest, _ in releases}
        problems += [f"orphan blob {d[:12]} after cleanup" for d in orphans]
    finally:
        registry.close()
    return problems + _database_checks(db), len(removed)


def test_kill_9_during_writes_leaves_a_consistent_store(
    tmp_path: Path, figures: Figures
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    rng = random.Random(2024)
    server, proc = start_server(home, ENV)
    try:
        keys = _setup(server)
    finally:
        stop_server(proc)
    acknowledged: list[str] = []
    kills = 0
    for round_no in range(ROUNDS):
        server, proc = start_server(home, ENV)
        state = Round(server, kill_after=rng.randint(1, 12))
        kill = threading.Event()
        threads = [threading.Thread(target=_writer, args=(state, i, round_no, keys, kill))
                   for i in range(WRITERS)]
        for thread in threads:
            thread.start()
        # Wait for the seeded number of answers (or every writer finishing), then SIGKILL.
        while not kill.wait(0.01) and any(t.is_alive() for t in threads):
            pass
        proc.kill()
        proc.wait()
        state.killed.set()
        kills += 1
        for thread in threads:
            thread.join()
        acknowledged += state.acknowledged
        assert not state.errors, state.errors
    problems, orphans_removed = _check_store(home, acknowledged)
    server, proc = start_server(home, ENV)
    try:
        assert httpx.get(f"{server}/api/v1/packages/owner/pkg", timeout=30).status_code == 200
    finally:
        stop_server(proc)
    figures.record("crash.kills_survived", kills)
    figures.record("crash.acknowledged_publishes", len(acknowledged))
    figures.record("crash.orphan_blobs_removed", orphans_removed)
    assert not problems, "\n".join(problems)

"""The release log end to end: a real server on 127.0.0.1, the real installer and the CLI.

An honest registry's log verifies (`agentfactory log verify`, online and from a dump) and every
install checks its release's inclusion and the log's consistency with the head remembered in
`$AGENTFACTORY_HOME/log.json`. Then the registry misbehaves, straight in its database as a
compromised operator would: it rewrites history (one old entry replaced, every head re-signed
with its real key) and the next install is refused naming both heads, the home unchanged; it
edits a leaf in place and an auditor's `log verify` fails.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from marketplace.client.errors import ApiError
from marketplace.client.http import MarketplaceClient
from marketplace.client.installer import Installer
from marketplace.client.lockfile import VettingSummary
from marketplace.client.logtrust import LogInconsistent, TreeHeadInfo, read_log_state
from registry.archive import open_archive, record_digest
from registry.db import write_session
from registry.service import Registry
from registry.signing import SigningKey, key_id_for
from registry.translog import LogEntry, MemoryTree, SignedTreeHead, TreeHead
from tests.marketplace.cli_runner import run_cli
from tests.marketplace.conftest import LiveServer, make_package

pytestmark = [pytest.mark.e2e]


def passed(package: Any) -> VettingSummary:
    return VettingSummary(passed=True, status="passed")


class Publisher:
    def __init__(self, url: str, name: str) -> None:
        self.url = url
        registration = MarketplaceClient(url).register(name, name)
        self.client = MarketplaceClient(url, registration.token)
        self.key = SigningKey.generate()
        self.client.add_key(self.key.public_bytes)

    def publish(self, workdir: Path, name: str, version: str) -> None:
        archive = make_package(workdir, name, version)
        record = record_digest(open_archive(archive))
        digest = hashlib.sha256(archive).hexdigest()
        self.client.publish(archive, self.key.sign_release(digest, name, version, record),
                            self.key.key_id)


@pytest.fixture
def server(live_server_factory: Any) -> LiveServer:
    server: LiveServer = live_server_factory(AGENTFACTORY_VET_UPLOADS="0")
    return server


@pytest.fixture
def operator(server: LiveServer) -> Iterator[Registry]:
    """The server's own registry, opened beside it (its database and its key)."""
    registry = Registry.open(server.home)
    yield registry
    registry.close()


def install(url: str, home: Path, request: str) -> list[str]:
    with MarketplaceClient(url) as client:
        result = Installer(client, home, vetter=passed, package_check=lambda m: None)
        return [f"{e.name} {e.version}" for e in result.install(request).installed]


def files_of(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*"))
            if p.is_file() and p.name != ".install.lock"}


def env_of(home: Path, url: str) -> dict[str, str]:
    return {"AGENTFACTORY_HOME": str(home), "AGENTFACTORY_URL": url, "AGENTFACTORY_TOKEN": ""}


def rewrite_history(registry: Registry, victim: str) -> None:
    """Replace the log's entry of `victim` (name@version) with another digest and re-log
    everything after it, every head signed with the registry's real key."""
    name, _, version = victim.partition("@")
    with write_session(registry.engine) as s:
        for table in ("log_head", "log_node", "log_leaf"):
            s.execute(text(f"DELETE FROM {table}"))
        release = s.execute(
            text("SELECT release.id, release.key_id FROM release JOIN package "
                 "ON package.id = release.package_id WHERE package.normalized_name = :n "
                 "AND release.canonical_version = :v"), params={"n": name, "v": version},
        ).one()
        forged = LogEntry.of(name, version, "0" * 64, release.key_id)
        registry.log.append(s, forged, release.id)
        registry.log.sync(s)


def test_an_honest_log_verifies_and_a_rewritten_one_is_refused(
    server: LiveServer, operator: Registry, tmp_path: Path
) -> None:
    alice = Publisher(server, "alice")
    alice.publish(tmp_path, "alice/first", "1.0.0")
    bob = tmp_path / "bob"

    assert install(server, bob, "alice/first") == ["alice/first 1.0.0"]
    state = read_log_state(bob).registries[server]
    assert state.key_id == operator.log_key().key_id  # pinned on first use
    assert state.head is not None and "alice/first@1" in state.seen
    size = state.head.tree_size

    alice.publish(tmp_path, "alice/second", "1.0.0")
    assert install(server, bob, "alice/second") == ["alice/second 1.0.0"]
    assert read_log_state(bob).registries[server].head.tree_size == size + 1  # type: ignore[union-attr]

    verified = run_cli(env_of(bob, server), "log", "verify").ok()
    assert f"{size + 1} entries" in verified.out
    assert f"consistent with the head remembered before (size {size + 1})" in verified.out
    dump = tmp_path / "log.json"
    run_cli(env_of(bob, server), "log", "dump", "-o", str(dump)).ok()
    offline = run_cli(env_of(bob, server), "log", "verify", "--file", str(dump)).ok()
    assert f"{size + 1} entries" in offline.out

    # The registry forks its history: alice/first's entry now names other bytes.
    remembered = read_log_state(bob).registries[server].head
    assert remembered is not None
    rewrite_history(operator, "alice/first@1")
    alice.publish(tmp_path, "alice/third", "1.0.0")
    forked = operator.log_head().head
    before = files_of(bob)
    with pytest.raises(LogInconsistent) as refused:
        install(server, bob, "alice/third")
    message = str(refused.value)
    assert "rewrote its release log" in message
    assert f"(size {size + 1}, root {remembered.root_hash[:16]}…)" in message  # the old head…
    assert f"(size {size + 2}, root {forked.root.hex()[:16]}…)" in message  # …and the new one
    assert files_of(bob) == before

    failed = run_cli(env_of(bob, server), "log", "verify").failed()
    assert "rewrote its release log" in failed.err
    assert files_of(bob) == before


def test_log_verify_catches_a_leaf_edited_in_place(
    server: LiveServer, operator: Registry, tmp_path: Path
) -> None:
    alice = Publisher(server, "alice")
    alice.publish(tmp_path, "alice/first", "1.0.0")
    carol = tmp_path / "carol"
    run_cli(env_of(carol, server), "log", "verify").ok()
    with write_session(operator.engine) as s:
        s.execute(text("UPDATE log_leaf SET digest = :d WHERE name = 'alice/first'"),
                  params={"d": "f" * 64})
    failed = run_cli(env_of(carol, server), "log", "verify").failed()
    assert "leaf hash is not its entry's" in failed.err
    # Rehashing the leaf too only moves the failure to the root the head signed.
    with write_session(operator.engine) as s:
        row = s.execute(
            text("SELECT key_id, record FROM log_leaf WHERE name = 'alice/first'")
        ).one()
        entry = LogEntry("alice/first", "1", "f" * 64, row.key_id, row.record)
        s.execute(text("UPDATE log_leaf SET leaf_hash = :h WHERE name = 'alice/first'"),
                  params={"h": entry.leaf_hash().hex()})
    failed = run_cli(env_of(carol, server), "log", "verify").failed()
    assert "not to the signed head's" in failed.err


def test_every_release_has_an_inclusion_proof_over_the_api(
    server: LiveServer, tmp_path: Path
) -> None:
    alice = Publisher(server, "alice")
    alice.publish(tmp_path, "alice/first", "1.0.0")
    with MarketplaceClient(server) as client:
        key = base64.b64decode(client.log_key().public_key)
        proof = client.log_inclusion("alice/first", "1.0")
        head = proof.head.signed()
        head.verify(key)
        assert proof.entry.name == "alice/first" and proof.entry.index == head.head.size - 1
        releases = {r.version: r for r in client.versions("alice/first")}
        assert proof.entry.digest == releases["1.0.0"].digest
        unknown = client.log_inclusion  # a release the registry never accepted has no proof
        with pytest.raises(ApiError) as absent:
            unknown("alice/first", "9.9")
        assert absent.value.status == 404
    # Anyone can audit with the URL alone; the first audit pins the log key.
    dave = tmp_path / "dave"
    audited = run_cli(env_of(dave, "http://unused"), "log", "verify", "--url", server).ok()
    assert f"release log of {server} verified" in audited.out
    assert read_log_state(dave).registries[server].key_id == key_id_for(key)


# -- the installer's witness against a hostile log (in process, over httpx.MockTransport) -----


class HostileLog:
    """Serves /api/v1/log/* from entries in memory; tests rewrite `entries`, `key` or
    `mangle` (a function applied to every JSON answer) to misbehave."""

    def __init__(self, entries: list[LogEntry]) -> None:
        self.entries = entries
        self.key = SigningKey.generate()
        self.mangle: Any = lambda path, body: body

    def tree(self) -> MemoryTree:
        return MemoryTree([e.leaf_hash() for e in self.entries])

    def head(self, size: int | None = None) -> dict[str, Any]:
        size = len(self.entries) if size is None else size
        signed = SignedTreeHead.sign(TreeHead(size, self.tree().root(size), 1000 + size),
                                     self.key)
        return TreeHeadInfo.of(signed).model_dump()

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, query = request.url.path.removeprefix("/api/v1"), request.url.params
        tree = self.tree()
        body: Any
        if path == "/log/key":
            body = {"key_id": self.key.key_id,
                    "public_key": base64.b64encode(self.key.public_bytes).decode()}
        elif path == "/log/proof/inclusion":
            wanted = LogEntry.of(query["name"], query["version"], "", "").release
            index = next((i for i, e in enumerate(self.entries) if e.release == wanted), None)
            if index is None:
                return httpx.Response(404, json={"detail": "no such entry", "code": "NotFound"})
            entry = self.entries[index]
            body = {"entry": {"index": index, **entry.__dict__,
                              "leaf_hash": entry.leaf_hash().hex()},
                    "proof": [p.hex() for p in tree.inclusion_proof(index)], "head": self.head()}
        elif path == "/log/proof/consistency":
            old, new = int(query["from"]), int(query.get("to", len(self.entries)))
            body = {"from_size": old, "to_size": new, "head": self.head(new),
                    "proof": [p.hex() for p in tree.consistency_proof(old, new)]}
        else:
            return httpx.Response(404, json={"detail": "no route", "code": "NotFound"})
        return httpx.Response(200, json=self.mangle(path, body))

    def client(self) -> MarketplaceClient:
        return MarketplaceClient("https://hostile.test", transport=httpx.MockTransport(self.handle))


def entry(i: int) -> LogEntry:
    return LogEntry.of(f"acme/tool{i}", "1.0", hashlib.sha256(b"%d" % i).hexdigest(), "k" * 32,
                       "ab" * 32)


def witness_check(log: HostileLog, home: Path, i: int) -> None:
    from marketplace.client.logtrust import LogWitness

    e = entry(i)
    witness = LogWitness(log.client(), home)
    signature = bytes.fromhex("ab" * 32) + b"s" * 64  # only its record prefix matters here
    witness.check_release(e.name, e.version, e.digest, e.key_id, signature)
    witness.save()


def test_the_witness_refuses_forks_other_keys_and_garbage(tmp_path: Path) -> None:
    from marketplace.client.logtrust import LogKeyChanged, LogProofFailed, NotInLog

    log = HostileLog([entry(i) for i in range(5)])
    home = tmp_path / "home"
    witness_check(log, home, 3)
    log.entries.append(entry(5))
    witness_check(log, home, 5)  # consistency 5 -> 6 proven
    saved = (home / "log.json").read_bytes()
    assert read_log_state(home).registries["https://hostile.test"].head.tree_size == 6  # type: ignore[union-attr]

    def refused(error: type[Exception], match: str, i: int = 5) -> None:
        with pytest.raises(error, match=match):
            witness_check(log, home, i)
        assert (home / "log.json").read_bytes() == saved  # nothing remembered

    honest = list(log.entries)
    log.entries = [entry(99), *honest[1:], entry(6)]  # a forked history, one longer
    refused(LogInconsistent, r"rewrote its release log: the head it signed before \(size 6")
    log.entries = honest[:5]  # a shorter log
    refused(LogInconsistent, "shorter than before", 3)
    log.entries = honest
    with pytest.raises(NotInLog):
        witness_check(log, home, 42)
    real_key, log.key = log.key, SigningKey.generate()
    refused(LogKeyChanged, "not by the pinned log key")
    log.key = real_key
    for mangle in (
        lambda path, body: {**body, "proof": ["zz"]},
        lambda path, body: {**body, "proof": ["00" * 31] * 3},
        lambda path, body: {**body, "proof": ["00" * 32] * 10_000},
        lambda path, body: {**body, "entry": {**body["entry"], "index": -1}},
        lambda path, body: {**body, "entry": {**body["entry"], "index": 2**80}},
        lambda path, body: {**body, "head": {**body["head"], "tree_size": 2**70}},
        lambda path, body: {**body, "head": {**body["head"], "root_hash": "00"}},
        lambda path, body: {**body, "head": {**body["head"], "signature": "!!"}},
    ):
        log.mangle = mangle
        refused(LogProofFailed, "does not vouch for")

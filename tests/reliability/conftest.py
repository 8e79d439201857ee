"""Shared fixtures of the reliability suites, and the figures they report.

Every suite records its figures (requests fuzzed, packages refused, clients, kills survived,
health-check latencies) with the `figures` fixture; they are printed as `reliability: key=value`
lines in the terminal summary, whatever `-s` says, so a CI log always shows them.

Invariants:
- everything binds to 127.0.0.1 only (the live-server fixtures come from the marketplace tests);
- the sandbox runner is compiled at most once, into the same cache the sandbox tests use;
- `store_fingerprint(home)` is a sha256 over a logical dump of every table of the server's
  SQLite database (rows sorted, so page layout and WAL state do not matter) plus the path and
  bytes of every blob: two equal fingerprints mean the store is byte-for-byte the same.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from tests.marketplace.conftest import (  # noqa: F401 - fixtures re-exported for these suites
    live_server,
    live_server_factory,
)

_FIGURES = pytest.StashKey[dict[str, str]]()


class Figures:
    """Figures of one test session, printed in the terminal summary."""

    def __init__(self, store: dict[str, str]) -> None:
        self._store = store

    def record(self, key: str, value: object) -> None:
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        self._store[key] = text
        print(f"reliability: {key}={text}")

    def add(self, key: str, amount: int) -> None:
        self._store[key] = str(int(self._store.get(key, "0")) + amount)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    store = request.config.stash.setdefault(_FIGURES, {})
    return Figures(store)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    store = terminalreporter.config.stash.get(_FIGURES, {})
    if not store:
        return
    terminalreporter.section("reliability figures")
    for key in sorted(store):
        terminalreporter.write_line(f"reliability: {key}={store[key]}")


# Tables a refused request may write by design: the audit trail records the refusal itself
# (`registry.audit`), which is the point of an audit trail, not a change to the store.
NOT_STORE = frozenset({"audit_event"})


def dump_database(db: Path) -> bytes:
    """A logical dump of every table but `NOT_STORE`, rows sorted: equal iff the data is equal."""
    uri = f"file:{db}?mode=ro"
    digest = hashlib.sha256()
    with sqlite3.connect(uri, uri=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for table in tables:
            if table in NOT_STORE:
                continue
            digest.update(f"table {table}\n".encode())
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            for row in sorted(rows, key=repr):
                digest.update(repr(row).encode() + b"\n")
    conn.close()
    return digest.digest()


def store_fingerprint(home: Path) -> str:
    """sha256 of the database dump plus every blob's path and bytes under `home/blobs`."""
    digest = hashlib.sha256(dump_database(home / "registry.db"))
    blobs = home / "blobs"
    for path in sorted(blobs.rglob("*")) if blobs.exists() else []:
        digest.update(str(path.relative_to(blobs)).encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()

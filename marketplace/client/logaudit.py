"""Auditing a registry's whole release log: `agentfactory log verify` (online or from a dump).

An audit trusts nothing the registry computed: it recomputes every leaf hash from its entry,
the whole tree from the leaves (`registry.translog.MemoryTree`), and compares the root with a
tree head signed by the pinned log key (`marketplace.client.logtrust`). It also checks that
the entries are numbered 0, 1, 2... with no release logged twice, that the head remembered
from earlier installs and audits is a prefix of this tree (its root recomputed from the first
entries, so no proof from the registry is needed), and that every release installed from this
registry is still logged with the entry seen then. A passing online audit remembers the head.

A dump (`agentfactory log dump`) is one JSON document: the log key, the signed head and every
entry up to it, as the API serves them; auditing it checks the same things with no network.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from marketplace.client.http import MarketplaceClient
from marketplace.client.logtrust import (
    LogEntryInfo,
    LogError,
    LogInconsistent,
    LogKeyInfo,
    LogWitness,
    RegistryLog,
    TreeHeadInfo,
    read_log_state,
)
from registry.translog import InvalidProof, MemoryTree, SignedTreeHead, TreeHead

PAGE = 1000


class LogAuditFailed(LogError):
    def __init__(self, source: str, reason: str) -> None:
        self.source, self.reason = source, reason
        super().__init__(f"the release log of {source} fails its audit: {reason}")


@dataclass(frozen=True)
class AuditReport:
    source: str
    head: TreeHead
    key_id: str
    entries: int
    remembered: TreeHead | None


class LogDump(BaseModel):
    url: str
    key: LogKeyInfo
    head: TreeHeadInfo
    entries: list[LogEntryInfo]


def _pages(client: MarketplaceClient, size: int) -> Iterator[LogEntryInfo]:
    start = 0
    while start < size:
        page = client.log_entries(start, min(PAGE, size - start))
        if not page.entries:
            raise LogAuditFailed(client.base_url, f"it served no entries from {start} though "
                                                  f"its head holds {size}")
        yield from page.entries
        start += len(page.entries)


def audit(
    source: str, log: RegistryLog, signed: SignedTreeHead, entries: Iterable[LogEntryInfo]
) -> AuditReport:
    """Recompute the tree of `entries` and hold it against `signed` and what `log` remembers."""
    try:
        signed.verify(base64.b64decode(log.public_key))
    except InvalidProof as exc:
        raise LogAuditFailed(source, str(exc)) from None
    head = signed.head
    tree = MemoryTree()
    releases: dict[str, int] = {}
    for served in entries:
        if tree.size == head.size:
            break
        if served.index != tree.size:
            raise LogAuditFailed(source, f"entry {served.index} came where {tree.size} belongs")
        entry = served.entry()
        leaf = entry.leaf_hash()
        if leaf.hex() != served.leaf_hash:
            raise LogAuditFailed(source, f"entry {served.index}'s leaf hash is not its entry's")
        if entry.release in releases:
            raise LogAuditFailed(source, f"{entry.release} is logged twice (entries "
                                         f"{releases[entry.release]} and {served.index})")
        releases[entry.release] = served.index
        seen = log.seen.get(entry.release)
        if seen is not None and seen != leaf.hex():
            raise LogInconsistent(source, _old(log, head), head,
                                  f"{entry.release} is logged with another entry than installed")
        tree.extend([leaf])
    if tree.size != head.size:
        raise LogAuditFailed(source, f"it holds {tree.size} entries, its head {head.size}")
    if tree.root() != head.root:
        raise LogAuditFailed(source, f"the entries hash to root {tree.root().hex()[:16]}…, "
                                     f"not to the signed head's {head.root.hex()[:16]}…")
    remembered = log.head.signed().head if log.head else None
    if remembered is not None:
        if remembered.size > head.size:
            raise LogInconsistent(source, remembered, head, "the log is shorter than before")
        if tree.root(remembered.size) != remembered.root:
            raise LogInconsistent(source, remembered, head,
                                  f"its first {remembered.size} entries hash to another root")
    missing = sorted(set(log.seen) - set(releases))
    if missing:
        raise LogInconsistent(source, _old(log, head), head,
                              f"{missing[0]}, installed before, is no longer logged")
    return AuditReport(source, head, signed.key_id, tree.size, remembered)


def _old(log: RegistryLog, fallback: TreeHead) -> TreeHead:
    return log.head.signed().head if log.head else fallback


def verify_online(client: MarketplaceClient, home: Path) -> AuditReport:
    """Audit the registry `client` talks to; remember its head when the audit passes."""
    witness = LogWitness(client, home)
    log = witness.registry_log()
    if log is None:
        raise LogAuditFailed(client.base_url, "it serves no release log")
    try:
        signed = client.log_head().signed()
    except InvalidProof as exc:
        raise LogAuditFailed(client.base_url, str(exc)) from None
    report = audit(client.base_url, log, signed, _pages(client, signed.head.size))
    log.head = TreeHeadInfo.of(signed)
    witness.save()
    return report


def dump(client: MarketplaceClient, path: Path) -> int:
    """Write the whole log (key, latest head, entries) to `path`; the number of entries."""
    key = client.log_key()
    head = client.log_head()
    entries = list(_pages(client, head.tree_size))
    document = LogDump(url=client.base_url, key=key, head=head, entries=entries)
    path.write_text(document.model_dump_json(indent=1) + "\n", encoding="utf-8")
    return len(entries)


def verify_dump(path: Path, home: Path) -> AuditReport:
    """Audit a dump offline, against the log key pinned for its registry (or, when none is
    pinned, the key the dump carries, which the report then says)."""
    try:
        document = LogDump.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as exc:
        raise LogAuditFailed(str(path), f"not a release-log dump ({type(exc).__name__})") from None
    pinned = read_log_state(home).registries.get(document.url)
    log = pinned or RegistryLog(key_id=document.key.key_id, public_key=document.key.public_key,
                                pinned_at="")
    try:
        signed = document.head.signed()
    except InvalidProof as exc:
        raise LogAuditFailed(str(path), str(exc)) from None
    return audit(f"{document.url} (dump {path})", log, signed, document.entries)

"""The release log in the database: appends inside the caller's transaction, proofs, heads.

Tables (`registry.models`): `log_leaf` (one per release: index, entry fields, leaf hash),
`log_node` (every completed perfect subtree above the leaves) and `log_head` (the signed tree
head of every size). The mathematics is `registry.translog`.

Invariants:
- `append` runs in the caller's session and never commits: the publish pipeline's `log` step
  appends the release in the release's own transaction, so a crash leaves both or neither;
- appends are serialized on the log's tail: SQLite write transactions are `BEGIN IMMEDIATE`
  (`registry.db`), PostgreSQL takes a transaction-scoped advisory lock first, so concurrent
  publishes get distinct, consecutive indexes (the primary key on the index refuses any other
  outcome);
- an append reads the tail's frontier (at most log2(n) stored subtrees, one query each for
  leaves and nodes), writes the leaf, the subtrees it completes (one on average) and the signed
  head of the new size; a proof reads at most 2*log2(n) stored subtrees in two queries;
- every head is signed by the registry's own key (`key`, see `registry.registry_key`), with a
  timestamp never older than the previous head's;
- releases published before the log existed are appended once, in upload order, by `sync`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, tuple_
from sqlmodel import Session, col, select

from registry.errors import NotFound, RegistryError
from registry.models import LogHead, LogLeaf, LogNode, Release
from registry.models import Package as PackageRow
from registry.signing import SigningKey
from registry.translog import (
    EMPTY_ROOT,
    Frontier,
    LogEntry,
    NodeId,
    SignedTreeHead,
    TreeHead,
    append_leaf,
    consistency_proof,
    frontier_root,
    inclusion_proof,
    perfect_cover,
)

# Names the PostgreSQL advisory lock on the log's tail (any constant all processes share).
_TAIL_LOCK = 0x6166_6C6F_6774_6169
MAX_ENTRIES_PAGE = 1000


class LogProofUnavailable(NotFound):
    """The log holds no such proof: a size it never had, or sizes in the wrong order."""

    def __init__(self, what: str, reason: str) -> None:
        self.kind, self.ident = "log proof", what
        self.reason = reason
        RegistryError.__init__(self, f"the log has no {what}: {reason}")


@dataclass(frozen=True)
class LoggedEntry:
    index: int
    entry: LogEntry
    leaf_hash: bytes


@dataclass(frozen=True)
class InclusionProof:
    """`logged` is leaf `logged.index` of the tree `head` signs; `proof` shows it."""

    logged: LoggedEntry
    proof: list[bytes]
    head: SignedTreeHead


@dataclass(frozen=True)
class ConsistencyProof:
    """The tree of `old` leaves is a prefix of the tree `head` signs (size `head.head.size`)."""

    old: int
    proof: list[bytes]
    head: SignedTreeHead


@dataclass(frozen=True)
class EntryPage:
    start: int
    entries: list[LoggedEntry]
    head: SignedTreeHead


def _entry(row: LogLeaf) -> LoggedEntry:
    entry = LogEntry(row.name, row.version, row.digest, row.key_id, row.record)
    return LoggedEntry(row.idx, entry, bytes.fromhex(row.leaf_hash))


def _signed(row: LogHead) -> SignedTreeHead:
    head = TreeHead(row.size, bytes.fromhex(row.root_hash), row.timestamp_ms)
    return SignedTreeHead(head, row.key_id, row.signature)


class LogStore:
    """The log over a registry's database; `key` returns the key that signs its heads."""

    def __init__(
        self, key: Callable[[], SigningKey], clock: Callable[[], float] = time.time
    ) -> None:
        self.key = key
        self.clock = clock
        # (size, root hex, frontier) of the last tail this object appended; checked against
        # the database before use, so a rolled-back or foreign append only costs a read.
        self._tail: tuple[int, str, Frontier] | None = None

    # -- reading ---------------------------------------------------------------------------
    def fetch(self, s: Session, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """Stored hashes of `ids` (leaves from `log_leaf`, the rest from `log_node`)."""
        found: dict[NodeId, bytes] = {}
        leaves = [node.pos for node in ids if node.level == 0]
        if leaves:
            rows = s.exec(
                select(LogLeaf.idx, LogLeaf.leaf_hash).where(col(LogLeaf.idx).in_(leaves))
            ).all()
            found.update({NodeId(0, idx): bytes.fromhex(value) for idx, value in rows})
        inner = [(node.level, node.pos) for node in ids if node.level]
        if inner:
            nodes = s.exec(
                select(LogNode.level, LogNode.idx, LogNode.hash)
                .where(tuple_(col(LogNode.level), col(LogNode.idx)).in_(inner))
            ).all()
            found.update({NodeId(lv, idx): bytes.fromhex(value) for lv, idx, value in nodes})
        missing = [node for node in ids if node not in found]
        if missing:  # pragma: no cover - a damaged store: never answer with a wrong proof
            raise RuntimeError(f"the release log lacks stored subtrees {missing[:4]}")
        return found

    def size(self, s: Session) -> int:
        return int(s.exec(select(func.coalesce(func.max(LogHead.size), 0))).one())

    def head(self, s: Session) -> SignedTreeHead:
        """The latest signed head (the empty log's is signed on the spot)."""
        row = s.exec(select(LogHead).order_by(col(LogHead.size).desc()).limit(1)).first()
        if row is None:
            return SignedTreeHead.sign(TreeHead(0, EMPTY_ROOT, self._now()), self.key())
        return _signed(row)

    def head_at(self, s: Session, size: int) -> SignedTreeHead:
        row = s.get(LogHead, size)
        if row is None:
            raise LogProofUnavailable(f"tree head of size {size}",
                                      f"it holds {self.size(s)} entries")
        return _signed(row)

    def inclusion(self, s: Session, name: str, version: str) -> InclusionProof:
        """The proof that release `name` `version` is in the latest tree."""
        wanted = LogEntry.of(name, version, "", "")
        row = s.exec(
            select(LogLeaf).where(LogLeaf.name == wanted.name, LogLeaf.version == wanted.version)
        ).first()
        if row is None:
            raise NotFound("log entry", wanted.release)
        head = self.head(s)
        proof = inclusion_proof(row.idx, head.head.size, lambda ids: self.fetch(s, ids))
        return InclusionProof(_entry(row), proof, head)

    def consistency(self, s: Session, old: int, new: int | None = None) -> ConsistencyProof:
        """The proof that the tree of `old` leaves is a prefix of the tree of `new` (default:
        the latest), with the signed head of `new`."""
        head = self.head(s) if new is None else self.head_at(s, new)
        size = head.head.size
        if not 1 <= old <= size:
            raise LogProofUnavailable(
                f"consistency proof from size {old} to {size}",
                "the first size must be at least 1 and at most the second",
            )
        proof = consistency_proof(old, size, lambda ids: self.fetch(s, ids))
        return ConsistencyProof(old, proof, head)

    def entries(self, s: Session, start: int, limit: int) -> EntryPage:
        """Entries from index `start` (at most `limit`, capped at `MAX_ENTRIES_PAGE`) of the
        latest tree, with its head: an auditor pages through `[0, head size)`."""
        head = self.head(s)
        end = min(head.head.size, start + min(limit, MAX_ENTRIES_PAGE))
        rows = s.exec(
            select(LogLeaf).where(col(LogLeaf.idx) >= start, col(LogLeaf.idx) < end)
            .order_by(col(LogLeaf.idx))
        ).all() if start < end else []
        return EntryPage(start, [_entry(row) for row in rows], head)

    # -- appending -------------------------------------------------------------------------
    def lock_tail(self, s: Session) -> None:
        """Serialize appends until the transaction ends (see the module docstring)."""
        if s.get_bind().dialect.name == "postgresql":
            s.execute(select(func.pg_advisory_xact_lock(_TAIL_LOCK)))

    def append(self, s: Session, entry: LogEntry, release_id: int) -> LoggedEntry:
        """Append `entry` (release `release_id`) in `s`'s transaction; return its leaf."""
        self.lock_tail(s)
        return self._append_all(s, [(entry, release_id)])[0]

    def sync(self, s: Session) -> int:
        """Append, in upload order, every release that is not in the log yet; how many."""
        self.lock_tail(s)
        rows = s.exec(
            select(Release, PackageRow.normalized_name)
            .join(PackageRow, col(PackageRow.id) == col(Release.package_id))
            .outerjoin(LogLeaf, col(LogLeaf.release_id) == col(Release.id))
            .where(col(LogLeaf.idx).is_(None))
            .order_by(col(Release.uploaded_at), col(Release.id))
        ).all()
        batch = []
        for release, name in rows:
            assert release.id is not None
            batch.append((entry_of(release, name), release.id))
        if batch:
            self._append_all(s, batch)
        return len(batch)

    def _append_all(self, s: Session, batch: list[tuple[LogEntry, int]]) -> list[LoggedEntry]:
        tail = s.execute(
            select(LogHead.size, LogHead.root_hash, LogHead.timestamp_ms)
            .order_by(col(LogHead.size).desc()).limit(1)
        ).first()
        size, root, last_ms = (tail[0], tail[1], tail[2]) if tail else (0, EMPTY_ROOT.hex(), 0)
        frontier = self._frontier(s, size, root)
        key = self.key()
        leaves: list[dict[str, object]] = []
        nodes: list[dict[str, object]] = []
        heads: list[dict[str, object]] = []
        logged: list[LoggedEntry] = []
        for entry, release_id in batch:
            leaf = entry.leaf_hash()
            frontier, completed = append_leaf(frontier, size, leaf)
            leaves.append({
                "idx": size, "leaf_hash": leaf.hex(), "release_id": release_id,
                "name": entry.name, "version": entry.version, "digest": entry.digest,
                "key_id": entry.key_id, "record": entry.record,
            })
            nodes += [{"level": n.level, "idx": n.pos, "hash": v.hex()} for n, v in completed]
            logged.append(LoggedEntry(size, entry, leaf))
            size += 1
            last_ms = max(last_ms, self._now())
            signed = SignedTreeHead.sign(TreeHead(size, frontier_root(frontier), last_ms), key)
            heads.append({"size": size, "root_hash": signed.head.root.hex(),
                          "timestamp_ms": last_ms, "key_id": signed.key_id,
                          "signature": signed.signature})
        # Core inserts: an append is three statements, not an ORM flush of objects.
        s.execute(insert(LogLeaf), leaves)
        if nodes:
            s.execute(insert(LogNode), nodes)
        s.execute(insert(LogHead), heads)
        self._tail = (size, frontier_root(frontier).hex(), frontier)
        return logged

    def _frontier(self, s: Session, size: int, root: str) -> Frontier:
        """The tail's perfect subtrees: remembered from this object's last append when the tail
        is still the one it wrote (same size and root), else read (one or two queries)."""
        remembered = self._tail
        if remembered is not None and remembered[:2] == (size, root):
            return remembered[2]
        cover = perfect_cover(0, size)
        stored = self.fetch(s, cover) if cover else {}
        return [(node, stored[node]) for node in cover]

    def _now(self) -> int:
        return int(self.clock() * 1000)


def entry_of(release: Release, normalized_name: str) -> LogEntry:
    """The log entry of a release row: a v2 signature carries its file record's sha256 in
    front (`registry.signing`)."""
    signature = bytes(release.signature)
    record = signature[:32].hex() if len(signature) == 96 else None
    return LogEntry.of(normalized_name, release.version, release.digest, release.key_id, record)

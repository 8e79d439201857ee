"""The release log's mathematics: a Merkle tree in the manner of RFC 6962 / RFC 9162, pure.

No I/O here: the database side is `registry.log_store`, the installer's side
`marketplace.client.logtrust`; both compute with these functions, so server, installer and
auditor agree on every byte.

Invariants:
- a leaf is `SHA-256(0x00 || entry)`, an inner node `SHA-256(0x01 || left || right)`, the root
  of the empty tree `SHA-256("")`; the tree over n leaves splits at the largest power of two
  below n (RFC 6962 section 2.1), so roots and proofs are those of Certificate Transparency;
- an entry (`LogEntry.encode`) is the canonical text of one release: a domain line, then the
  normalized name, the canonical version, the archive's sha256, the signing key's id and the
  sha256 of the file record a v2 signature covers (empty for v1), one per line;
- storage is by *perfect* subtrees: `NodeId(level, pos)` is the subtree of `2**level` leaves
  starting at leaf `pos * 2**level`. A node never changes once its leaves exist, so a store
  keeps every completed node and appending writes the leaf plus the nodes it completes
  (amortized one); any root or proof is a fold of at most `2 * log2(n)` stored nodes, fetched in
  one batch (`NodeFetcher`);
- verification (`verify_inclusion`, `verify_consistency`) follows RFC 9162 sections 2.1.3.2
  and 2.1.4.2 and refuses anything malformed - a negative, huge or non-integer size, an index
  outside the tree, a hash that is not 32 bytes, a proof longer than any tree could need - with
  `InvalidProof` naming what was wrong, never another exception;
- a tree head (`TreeHead`: size, root, timestamp in milliseconds) is signed by the registry's
  own Ed25519 log key over `agentfactory-log-head-v1\\n size \\n root-hex \\n timestamp`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from packaging.utils import canonicalize_version

from registry.errors import InvalidKey, RegistryError
from registry.names import normalize_name
from registry.signing import SigningKey, key_id_for, load_public

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
# Sizes are stored in signed 64-bit columns; no log gets near this.
MAX_TREE_SIZE = 2**62
# An inclusion proof has at most one hash per level; a consistency proof at most one more.
MAX_PROOF_HASHES = 64
_ENTRY_DOMAIN = b"agentfactory-log-entry-v1\n"
_HEAD_DOMAIN = b"agentfactory-log-head-v1\n"


class InvalidProof(RegistryError):
    """A proof, a tree head or their inputs do not verify; `reason` says which check failed."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what} does not verify: {reason}")


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


@dataclass(frozen=True)
class LogEntry:
    """What the log records of one release. `record` is the file record's sha256 a v2
    signature vouches for (None for a v1 signature)."""

    name: str
    version: str
    digest: str
    key_id: str
    record: str | None = None

    @classmethod
    def of(cls, name: str, version: str, digest: str, key_id: str,
           record: str | None = None) -> LogEntry:
        """The entry in canonical form (normalized name, canonical version, lowercase hex)."""
        return cls(normalize_name(name), canonicalize_version(version), digest.lower(), key_id,
                   record.lower() if record else None)

    def encode(self) -> bytes:
        lines = (self.name, self.version, self.digest, self.key_id, self.record or "")
        return _ENTRY_DOMAIN + "\n".join(lines).encode("utf-8")

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.encode())

    @property
    def release(self) -> str:
        return f"{self.name}@{self.version}"


class NodeId(NamedTuple):
    """The perfect subtree of `2**level` leaves starting at leaf `pos * 2**level`."""

    level: int
    pos: int


NodeFetcher = Callable[[Sequence[NodeId]], Mapping[NodeId, bytes]]
"""Given node ids, their hashes (every one asked for must be answered)."""


def _split(n: int) -> int:
    """The largest power of two smaller than `n` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_cover(start: int, end: int) -> list[NodeId]:
    """The perfect subtrees, left to right and shrinking, whose fold is the hash of leaves
    [start, end). `start` must be aligned as RFC 6962's recursion leaves it (a multiple of the
    power of two at or above `end - start`), which every range below is."""
    nodes: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start % (1 << level):
            level -= 1
        nodes.append(NodeId(level, start >> level))
        start += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """The hash of a range from the hashes of its perfect cover (right to left)."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make up PATH(index, D[size]), leaf's sibling first."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make up PROOF(old, D[new]) (RFC 6962 section 2.1.2)."""
    ranges: list[tuple[int, int]] = []
    lo, hi, complete = 0, new, True
    while True:
        n, m = hi - lo, old - lo
        if m == n:
            if not complete:
                ranges.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            complete = False
    ranges.reverse()
    return ranges


def hash_ranges(ranges: Sequence[tuple[int, int]], fetch: NodeFetcher) -> list[bytes]:
    """The hash of each range, from one batch of stored nodes."""
    covers = [perfect_cover(lo, hi) for lo, hi in ranges]
    wanted = sorted({node for cover in covers for node in cover})
    nodes = fetch(wanted) if wanted else {}
    return [fold([nodes[node] for node in cover]) for cover in covers]


def root_hash(size: int, fetch: NodeFetcher) -> bytes:
    return hash_ranges([(0, size)], fetch)[0] if size else EMPTY_ROOT


def _check_size(what: str, size: object, low: int = 0) -> int:
    if type(size) is not int or not low <= size <= MAX_TREE_SIZE:
        raise InvalidProof(what, f"tree size {size!r} is not an integer from {low} to 2**62")
    return size


def inclusion_proof(index: int, size: int, fetch: NodeFetcher) -> list[bytes]:
    _check_size("an inclusion request", size, 1)
    if type(index) is not int or not 0 <= index < size:
        raise InvalidProof("an inclusion request", f"leaf {index!r} is not in a tree of {size}")
    return hash_ranges(inclusion_ranges(index, size), fetch)


def consistency_proof(old: int, new: int, fetch: NodeFetcher) -> list[bytes]:
    _check_size("a consistency request", new)
    if type(old) is not int or not 0 <= old <= new:
        raise InvalidProof("a consistency request", f"size {old!r} is not from 0 to {new}")
    if old in (0, new):
        return []
    return hash_ranges(consistency_ranges(old, new), fetch)


def _check_hashes(what: str, hashes: object, limit: int = MAX_PROOF_HASHES) -> list[bytes]:
    if not isinstance(hashes, list | tuple) or len(hashes) > limit:
        raise InvalidProof(what, f"a proof is a list of at most {limit} hashes")
    for value in hashes:
        if not isinstance(value, bytes) or len(value) != HASH_BYTES:
            raise InvalidProof(what, f"every hash is {HASH_BYTES} bytes")
    return list(hashes)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise `InvalidProof` unless `proof` shows leaf hash `leaf` at `index` in the tree of
    `size` leaves whose root is `root` (RFC 9162 section 2.1.3.2)."""
    what = f"the inclusion proof of leaf {index!r} in the tree of {size!r}"
    _check_size(what, size, 1)
    if type(index) is not int or not 0 <= index < size:
        raise InvalidProof(what, "the leaf index is outside the tree")
    path = _check_hashes(what, proof)
    (leaf_value, root_value) = _check_hashes(what, [leaf, root], 2)
    fn, sn, result = index, size - 1, leaf_value
    for sibling in path:
        if sn == 0:
            raise InvalidProof(what, "the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof(what, "the proof is shorter than the tree is deep")
    if result != root_value:
        raise InvalidProof(what, "it leads to another root")


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise `InvalidProof` unless `proof` shows that the tree of `old` leaves (root
    `old_root`) is a prefix of the tree of `new` leaves (root `new_root`), RFC 9162 2.1.4.2."""
    what = f"the consistency proof from {old!r} to {new!r} leaves"
    _check_size(what, new)
    if type(old) is not int or not 0 <= old <= new:
        raise InvalidProof(what, "the first size is not from 0 to the second")
    path = _check_hashes(what, proof)
    (old_value, new_value) = _check_hashes(what, [old_root, new_root], 2)
    if old == 0:  # the empty tree is a prefix of every tree
        if path:
            raise InvalidProof(what, "a proof from the empty tree is empty")
        return
    if old == new:
        if path:
            raise InvalidProof(what, "a proof between equal sizes is empty")
        if old_value != new_value:
            raise InvalidProof(what, "two different roots for the same size")
        return
    if not path:
        raise InvalidProof(what, "the proof is empty")
    if old & (old - 1) == 0:  # a power of two: the old root is the first node of the path
        path = [old_value, *path]
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = second = path[0]
    for node in path[1:]:
        if sn == 0:
            raise InvalidProof(what, "the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            first, second = node_hash(node, first), node_hash(node, second)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = node_hash(second, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof(what, "the proof is shorter than the tree is deep")
    if first != old_value:
        raise InvalidProof(what, "it does not lead to the first root")
    if second != new_value:
        raise InvalidProof(what, "it does not lead to the second root")


# -- appending -------------------------------------------------------------------------------

Frontier = list[tuple[NodeId, bytes]]
"""The perfect subtrees of a tree, left to right: `perfect_cover(0, size)` with hashes."""


def append_leaf(frontier: Frontier, index: int, leaf: bytes) -> tuple[Frontier, Frontier]:
    """Append leaf `index` (the tree's size) to `frontier`: the new frontier, and the nodes of
    level >= 1 the leaf completed (what a store must keep)."""
    nodes = [*frontier, (NodeId(0, index), leaf)]
    completed: Frontier = []
    while len(nodes) >= 2 and nodes[-1][0].level == nodes[-2][0].level:
        (left_id, left), (_, right) = nodes[-2], nodes[-1]
        parent = (NodeId(left_id.level + 1, left_id.pos >> 1), node_hash(left, right))
        nodes[-2:] = [parent]
        completed.append(parent)
    return nodes, completed


def frontier_root(frontier: Frontier) -> bytes:
    return fold([value for _, value in frontier]) if frontier else EMPTY_ROOT


class MemoryTree:
    """A whole tree in memory, every level kept: for audits, tests and benchmarks."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        self.extend(leaves)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Add leaf hashes, completing the levels above in bulk."""
        self.levels[0].extend(leaves)
        level = 0
        while len(self.levels[level]) > 1:
            below = self.levels[level]
            if len(self.levels) == level + 1:
                self.levels.append([])
            above = self.levels[level + 1]
            for i in range(2 * len(above), len(below) - 1, 2):
                above.append(node_hash(below[i], below[i + 1]))
            level += 1

    def fetch(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return {node: self.levels[node.level][node.pos] for node in ids}

    def root(self, size: int | None = None) -> bytes:
        return root_hash(self.size if size is None else size, self.fetch)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self.size if size is None else size, self.fetch)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        return consistency_proof(old, self.size if new is None else new, self.fetch)


# -- tree heads ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TreeHead:
    size: int
    root: bytes
    timestamp_ms: int

    def message(self) -> bytes:
        return _HEAD_DOMAIN + f"{self.size}\n{self.root.hex()}\n{self.timestamp_ms}".encode()

    def describe(self) -> str:
        return f"size {self.size}, root {self.root.hex()[:16]}…"


@dataclass(frozen=True)
class SignedTreeHead:
    head: TreeHead
    key_id: str
    signature: bytes

    @classmethod
    def sign(cls, head: TreeHead, key: SigningKey) -> SignedTreeHead:
        return cls(head, key.key_id, key.sign(head.message()))

    def verify(self, public_key: bytes) -> None:
        """Raise `InvalidProof` unless this head is signed by `public_key` (the pinned log
        key) and well formed."""
        what = f"the signed tree head ({self.head.describe()})"
        _check_size(what, self.head.size)
        _check_hashes(what, [self.head.root], 1)
        if key_id_for(public_key) != self.key_id:
            raise InvalidProof(what, f"it is signed by key {self.key_id}, "
                                     f"not by the log key {key_id_for(public_key)}")
        try:
            load_public(public_key).verify(self.signature, self.head.message())
        except (InvalidSignature, InvalidKey):
            raise InvalidProof(what, "its signature is not the log key's") from None

"""The release log's Merkle tree (registry.translog), checked against a naive recomputation.

The reference below is RFC 6962 section 2.1 read literally (recursive MTH, PATH and PROOF over
lists of leaves), written apart from the module's iterative, node-store code: every root and
every proof must agree with it, verify, and stop verifying when anything is changed.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from registry import Registry
from registry.log_store import LogProofUnavailable
from registry.models import LogHead, LogLeaf, Release
from registry.publish import STEPS, PublishContext, run_publish
from registry.signing import SigningKey
from registry.translog import (
    EMPTY_ROOT,
    InvalidProof,
    LogEntry,
    MemoryTree,
    SignedTreeHead,
    TreeHead,
    append_leaf,
    frontier_root,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from tests.registry.factories import (
    TestPublisher,
    make_archive,
    make_publisher,
    publish,
    sign,
)


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return _sha(b"")
    if len(leaves) == 1:
        return _sha(b"\x00" + leaves[0])
    k = _k(len(leaves))
    return _sha(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def tree(n: int) -> MemoryTree:
    return MemoryTree([leaf_hash(e) for e in entries(n)])


def test_known_answers() -> None:
    # Computed by hand from the definitions: no code of the module involved.
    assert tree(0).root() == EMPTY_ROOT == _sha(b"")
    one = _sha(b"\x00entry 0")
    assert tree(1).root() == one
    two = _sha(b"\x01" + one + _sha(b"\x00entry 1"))
    assert tree(2).root() == two
    three = _sha(b"\x01" + two + _sha(b"\x00entry 2"))
    assert tree(3).root() == three
    assert tree(3).root().hex() == mth(entries(3)).hex()


@pytest.mark.parametrize("size", range(1, 71))
def test_every_inclusion_proof_matches_the_rfc_and_verifies(size: int) -> None:
    leaves = entries(size)
    t = tree(size)
    root = t.root()
    assert root == mth(leaves)
    for index in range(size):
        proof = t.inclusion_proof(index)
        assert proof == path(index, leaves)
        verify_inclusion(leaf_hash(leaves[index]), index, size, proof, root)


def test_every_consistency_proof_up_to_40_matches_the_rfc_and_verifies() -> None:
    leaves = entries(40)
    t = tree(40)
    for new in range(1, 41):
        new_root = t.root(new)
        for old in range(1, new + 1):
            proof = t.consistency_proof(old, new)
            expected = subproof(old, leaves[:new], True) if old < new else []
            assert proof == expected, (old, new)
            verify_consistency(old, new, t.root(old), new_root, proof)


def test_appending_leaf_by_leaf_gives_the_same_roots() -> None:
    frontier: Any = []
    stored: dict[Any, bytes] = {}
    leaves = entries(70)
    for index, entry in enumerate(leaves):
        frontier, completed = append_leaf(frontier, index, leaf_hash(entry))
        stored.update(completed)
        assert frontier_root(frontier) == mth(leaves[: index + 1])
    # What a store keeps (levels >= 1) is exactly the tree's completed nodes.
    t = tree(70)
    assert stored == {
        key: t.levels[key.level][key.pos] for key in stored
    }
    assert len(stored) == sum(len(level) for level in t.levels[1:])


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


def test_tampered_inclusion_proofs_fail() -> None:
    t, leaves = tree(23), entries(23)
    root, proof, leaf = t.root(), t.inclusion_proof(9), leaf_hash(leaves[9])
    bad: list[tuple[Any, ...]] = [
        (_flip(leaf), 9, 23, proof, root),
        (leaf, 8, 23, proof, root),
        # A size of another shape (the size itself is bound by the signed head, not the proof).
        (leaf, 9, 12, proof, root),
        (leaf, 9, 40, proof, root),
        (leaf, 9, 23, proof, _flip(root)),
        (leaf, 9, 23, [_flip(proof[0]), *proof[1:]], root),
        (leaf, 9, 23, proof[:-1], root),
        (leaf, 9, 23, [*proof, proof[0]], root),
        (leaf, 9, 23, [], root),
    ]
    for args in bad:
        with pytest.raises(InvalidProof):
            verify_inclusion(*args)


def test_tampered_consistency_proofs_fail() -> None:
    t = tree(30)
    old_root, new_root, proof = t.root(11), t.root(30), t.consistency_proof(11, 30)
    other = tree(12).root(11)  # a different history: another entry set of the same size
    assert other == old_root  # same leaves: the honest case
    forked = MemoryTree([leaf_hash(b"forked")] + [leaf_hash(e) for e in entries(30)[1:]])
    bad: list[tuple[Any, ...]] = [
        (11, 30, forked.root(11), new_root, proof),
        (11, 30, old_root, forked.root(30), proof),
        (11, 30, old_root, new_root, forked.consistency_proof(11, 30)),
        (10, 30, old_root, new_root, proof),
        (11, 12, old_root, new_root, proof),
        (11, 70, old_root, new_root, proof),
        (11, 30, old_root, new_root, proof[:-1]),
        (11, 30, old_root, new_root, [*proof, proof[0]]),
        (11, 30, old_root, new_root, []),
        (11, 11, old_root, new_root, []),
        (0, 30, old_root, new_root, proof),
    ]
    for args in bad:
        with pytest.raises(InvalidProof):
            verify_consistency(*args)


@pytest.mark.parametrize(
    "args",
    [
        (b"x" * 32, -1, 5, [], b"r" * 32),
        (b"x" * 32, 0, -5, [], b"r" * 32),
        (b"x" * 32, 0, 2**70, [], b"r" * 32),
        (b"x" * 32, 2**70, 2**71, [b"p" * 32] * 3, b"r" * 32),
        (b"x" * 32, True, 5, [], b"r" * 32),
        (b"x" * 32, 0, 5.0, [], b"r" * 32),
        (b"x" * 32, "0", "5", [], b"r" * 32),
        (b"x" * 31, 0, 1, [], b"r" * 32),
        (b"x" * 32, 0, 1, [], b"r" * 33),
        (b"x" * 32, 0, 2, [b"short"], b"r" * 32),
        (b"x" * 32, 0, 2, ["not bytes" * 4], b"r" * 32),
        (b"x" * 32, 0, 2, [b"p" * 32] * 100_000, b"r" * 32),
        (b"x" * 32, 0, 2, None, b"r" * 32),
        (None, 0, 2, [b"p" * 32], None),
    ],
)
def test_hostile_inclusion_inputs_are_refused(args: tuple[Any, ...]) -> None:
    with pytest.raises(InvalidProof):
        verify_inclusion(*args)


@pytest.mark.parametrize(
    "args",
    [
        (-1, 5, b"a" * 32, b"b" * 32, [b"p" * 32]),
        (5, 3, b"a" * 32, b"b" * 32, [b"p" * 32]),
        (3, 2**80, b"a" * 32, b"b" * 32, [b"p" * 32]),
        (2**61, 2**62, b"a" * 32, b"b" * 32, [b"p" * 32] * 64),
        (3, 5, b"a" * 31, b"b" * 32, [b"p" * 32]),
        (3, 5, b"a" * 32, b"b" * 32, [b"p" * 31]),
        (3, 5, b"a" * 32, b"b" * 32, [b"p" * 32] * 65),
        (3, 5, b"a" * 32, b"b" * 32, "not a list"),
        (0, 5, b"a" * 32, b"b" * 32, [b"p" * 32]),
        (True, 5, b"a" * 32, b"b" * 32, [b"p" * 32]),
    ],
)
def test_hostile_consistency_inputs_are_refused(args: tuple[Any, ...]) -> None:
    with pytest.raises(InvalidProof):
        verify_consistency(*args)


def test_entries_are_canonical() -> None:
    a = LogEntry.of("Acme/Summarizer", "1.0", "AB" * 32, "k" * 32, "CD" * 32)
    b = LogEntry.of("acme/summarizer", "1.0.0", "ab" * 32, "k" * 32, "cd" * 32)
    assert a == b and a.encode() == b.encode()
    assert a.encode() == (
        b"agentfactory-log-entry-v1\nacme/summarizer\n1\n" + b"ab" * 32 + b"\n"
        + b"k" * 32 + b"\n" + b"cd" * 32
    )
    v1 = LogEntry.of("acme/summarizer", "1.0", "ab" * 32, "k" * 32)
    assert v1.leaf_hash() != a.leaf_hash()


def test_signed_tree_heads_verify_only_with_the_log_key() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    head = TreeHead(5, tree(5).root(), 1_700_000_000_000)
    signed = SignedTreeHead.sign(head, key)
    signed.verify(key.public_bytes)
    with pytest.raises(InvalidProof, match="not by the log key"):
        signed.verify(other.public_bytes)
    forged = SignedTreeHead(TreeHead(6, head.root, head.timestamp_ms), key.key_id,
                            signed.signature)
    with pytest.raises(InvalidProof, match="signature"):
        forged.verify(key.public_bytes)
    truncated = SignedTreeHead(head, key.key_id, signed.signature[:10])
    with pytest.raises(InvalidProof):
        truncated.verify(key.public_bytes)
    with pytest.raises(InvalidProof):
        SignedTreeHead(TreeHead(-1, head.root, 0), key.key_id, b"").verify(key.public_bytes)


# -- the log in the registry's database (SQLite and PostgreSQL) ------------------------------

def _leaves(registry: Registry) -> list[LogLeaf]:
    with Session(registry.engine) as s:
        return list(s.exec(select(LogLeaf).order_by(LogLeaf.idx)).all())  # type: ignore[arg-type]


def test_every_release_is_logged_with_a_signed_head_and_proofs(
    registry: Registry, acme: TestPublisher
) -> None:
    published = [publish(registry, acme, version=f"1.{i}") for i in range(7)]
    leaves = _leaves(registry)
    assert [leaf.idx for leaf in leaves] == list(range(7))
    assert [leaf.digest for leaf in leaves] == [r.digest for r in published]
    reference = MemoryTree([bytes.fromhex(leaf.leaf_hash) for leaf in leaves])
    head = registry.log_head()
    head.verify(registry.log_key().public_bytes)
    assert (head.head.size, head.head.root) == (7, reference.root())
    for i, release in enumerate(published):
        proof = registry.log_inclusion("acme/summarizer", release.version)
        assert proof.logged.index == i and proof.head == head
        # The installer's side: the leaf recomputed from what it verified itself.
        entry = LogEntry.of("acme/summarizer", release.version, release.digest, release.key_id)
        verify_inclusion(entry.leaf_hash(), i, 7, proof.proof, head.head.root)
    for old in range(1, 8):
        consistency = registry.log_consistency(old)
        verify_consistency(old, 7, reference.root(old), head.head.root, consistency.proof)
        older = registry.log_consistency(1, old)
        assert older.head.head.root == reference.root(old)
    page = registry.log_entries(2, 3)
    assert [e.index for e in page.entries] == [2, 3, 4]


def test_proofs_the_log_cannot_give_are_not_found(registry: Registry, acme: TestPublisher) -> None:
    publish(registry, acme, version="1.0")
    for old, new in ((2, 1), (0, 1), (1, 5)):
        with pytest.raises(LogProofUnavailable):
            registry.log_consistency(old, new)
    assert registry.log_entries(5, 10).entries == []
    assert registry.log_head().head.size == 1


def test_concurrent_publishes_get_consecutive_indexes(registry: Registry) -> None:
    publishers = [make_publisher(registry, f"pub{i}x") for i in range(6)]
    errors: list[BaseException] = []

    def work(pub: TestPublisher) -> None:
        try:
            for version in ("1.0", "1.1"):
                publish(registry, pub, name=f"{pub.name}/tool", version=version)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(pub,)) for pub in publishers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    leaves = _leaves(registry)
    assert [leaf.idx for leaf in leaves] == list(range(12))
    with Session(registry.engine) as s:
        sizes = sorted(s.exec(select(LogHead.size)).all())
    assert sizes == list(range(1, 13))
    reference = MemoryTree([bytes.fromhex(leaf.leaf_hash) for leaf in leaves])
    assert registry.log_head().head.root == reference.root()


def _fail(ctx: PublishContext) -> None:
    raise RuntimeError("power cut after the log step")


def test_a_failure_after_the_log_step_leaves_neither_release_nor_entry(
    registry: Registry, acme: TestPublisher
) -> None:
    publish(registry, acme, version="1.0")
    archive = make_archive(version="2.0")
    signature = sign(acme, archive, "acme/summarizer", "2.0")
    with Session(registry.engine.execution_options(registry_write=True)) as s:
        ctx = PublishContext(
            session=s, blobs=registry.blobs, config=registry.config, principal=acme.principal,
            archive=archive, signature=signature, key_id=acme.key.key_id, log=registry.log,
        )
        with pytest.raises(RuntimeError):
            run_publish(ctx, [*STEPS, ("crash", _fail)])
    assert ctx.logged is not None and ctx.logged.index == 1  # it had been appended
    assert [leaf.version for leaf in _leaves(registry)] == ["1"]
    assert registry.log_head().head.size == 1
    with Session(registry.engine) as s:
        assert len(s.exec(select(Release)).all()) == 1
    # The same upload then takes the index the failed one had.
    registry.publish(acme.principal, archive, signature, acme.key.key_id)
    assert [leaf.idx for leaf in _leaves(registry)] == [0, 1]


def test_releases_from_before_the_log_are_appended_once(
    registry: Registry, acme: TestPublisher
) -> None:
    for version in ("1.0", "1.1", "1.2"):
        publish(registry, acme, version=version)
    with Session(registry.engine) as s:  # a database from before the log
        for table in ("log_head", "log_node", "log_leaf"):
            s.exec(text(f"DELETE FROM {table}"))  # type: ignore[call-overload]
        s.commit()
    fresh = Registry(registry.engine, registry.blobs, registry.config)
    assert fresh.log_head().head.size == 3
    assert [leaf.version for leaf in _leaves(fresh)] == ["1", "1.1", "1.2"]
    publish(fresh, acme, version="1.3")
    assert fresh.log_head().head.size == 4

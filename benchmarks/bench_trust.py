# groups: trust
"""Trust figures: the release log's appends and proof verification.

- `trust.log_append_per_s`: releases appended to the log in the registry's SQLite database
  (WAL, synchronous=NORMAL), each in its own write transaction as a publish does (leaf, the
  subtrees it completes, a signed tree head), in process: 1 / the median append.
- `trust.inclusion_verify_us` and `trust.consistency_verify_us`: verifying one proof (what the
  installer does) in a tree of 1,000,000 entries, median over many leaves and sizes. The tree is
  built in memory with its leaves hashed in bulk (`registry.translog.MemoryTree`): the database
  plays no part in verification.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _util import emit

from registry import Registry
from registry.db import write_session
from registry.log_store import LogStore
from registry.models import Package, Release
from registry.translog import LogEntry, MemoryTree, verify_consistency, verify_inclusion
from tests.registry.factories import make_publisher, publish

MILLION = 1_000_000


def bench_append(home: Path, n: int = 2000) -> None:
    registry = Registry.open(home / "append")
    pub = make_publisher(registry, "bench")
    publish(registry, pub, name="bench/many", version="0.1")  # the package the rows hang on
    with write_session(registry.engine) as s:
        package = s.get(Package, 1)
        assert package is not None and package.id is not None
        rows = []
        for i in range(n):
            version = f"1.{i}"
            rows.append(Release(package_id=package.id, version=version, canonical_version=version,
                                digest=hashlib.sha256(version.encode()).hexdigest(), size=1,
                                signature=b"x" * 96, key_id=pub.key.key_id, manifest_json="{}"))
        s.add_all(rows)
        s.flush()
        releases = [(r.id, r.version, r.digest) for r in rows]
    store = LogStore(registry.log_key)
    samples = []
    for release_id, version, digest in releases:
        assert release_id is not None
        entry = LogEntry.of("bench/many", version, digest, pub.key.key_id, "ab" * 32)
        start = time.perf_counter()
        with write_session(registry.engine) as s:
            store.append(s, entry, release_id)
        samples.append(time.perf_counter() - start)
    emit("trust.log_append_per_s", 1 / statistics.median(samples), "1/s", appends=n)
    registry.close()


def million_tree() -> MemoryTree:
    sha = hashlib.sha256
    leaves = [sha(b"\x00" + i.to_bytes(8, "big")).digest() for i in range(MILLION)]
    return MemoryTree(leaves)


def _median_us(calls: list[tuple[Any, ...]], check: Callable[..., None]) -> float:
    samples = []
    for args in calls:
        start = time.perf_counter()
        check(*args)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def bench_verify(tree: MemoryTree, proofs: int = 2000) -> None:
    rng = random.Random(14)
    root = tree.root()
    calls: list[tuple[Any, ...]] = []
    for index in (rng.randrange(MILLION) for _ in range(proofs)):
        calls.append((tree.levels[0][index], index, MILLION, tree.inclusion_proof(index), root))
    emit("trust.inclusion_verify_us", _median_us(calls, verify_inclusion), "us",
         tree_size=MILLION, proof_hashes=len(calls[0][3]))
    calls = []
    for old in (rng.randrange(1, MILLION) for _ in range(proofs)):
        calls.append((old, MILLION, tree.root(old), root, tree.consistency_proof(old)))
    emit("trust.consistency_verify_us", _median_us(calls, verify_consistency), "us",
         tree_size=MILLION)


def main(prefix: str) -> None:
    def wanted(*names: str) -> bool:
        return any(name.startswith(prefix) for name in names)

    if wanted("trust.log_append_per_s"):
        with tempfile.TemporaryDirectory(prefix="bench-trust-") as tmp:
            bench_append(Path(tmp))
    if wanted("trust.inclusion_verify_us", "trust.consistency_verify_us"):
        bench_verify(million_tree())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")

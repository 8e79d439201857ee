# groups: registry
"""Registry figures: publish throughput, resolve and search latency, Ed25519 costs.

All in-process on SQLite (WAL, synchronous=NORMAL) with a local blob store in a temporary
directory, so the figures include real fsyncs of the blobs.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path

from _util import emit, median_time, percentile

from registry import Registry, RegistryConfig, SigningKey, verify_release
from registry.db import write_session
from registry.models import Package, Release
from tests.registry.factories import make_archive, make_publisher


def bench_publish(home: Path, n: int = 300) -> None:
    registry = Registry.open(home / "publish", config=RegistryConfig())
    pub = make_publisher(registry, "bench")
    uploads = []
    for i in range(n):
        name, version = f"bench/agent{i}", "1.0.0"
        archive = make_archive(name=name, version=version, pad_to=20_000)
        digest = hashlib.sha256(archive).hexdigest()
        uploads.append((archive, pub.key.sign_release(digest, name, version)))
    start = time.perf_counter()
    for archive, signature in uploads:
        registry.publish(pub.principal, archive, signature, pub.key.key_id)
    elapsed = time.perf_counter() - start
    emit("registry.publish_per_s", n / elapsed, "1/s", package_bytes=len(uploads[0][0]))
    registry.close()


def bench_resolve(home: Path) -> None:
    registry = Registry.open(home / "resolve")
    pub = make_publisher(registry, "bench")
    registry.publish(pub.principal, *_signed(pub, "bench/many", "0.0.1"), pub.key.key_id)
    # 1,000 versions inserted directly: the figure is about resolving, not publishing.
    with write_session(registry.engine) as s:
        package = s.get(Package, 1)
        assert package is not None and package.id is not None
        for i in range(999):
            version = f"{1 + i // 100}.{(i // 10) % 10}.{i % 10}"
            s.add(Release(package_id=package.id, version=version, canonical_version=version,
                          digest=hashlib.sha256(version.encode()).hexdigest(), size=1,
                          signature=b"x", key_id=pub.key.key_id, manifest_json="{}"))
    registry.resolve("bench/many", ">=2,<9.5")
    seconds = median_time(lambda: registry.resolve("bench/many", ">=2,<9.5"), repeat=50)
    emit("registry.resolve_1k_ms", seconds * 1000, "ms")
    registry.close()


def _signed(pub: object, name: str, version: str) -> tuple[bytes, bytes]:
    archive = make_archive(name=name, version=version)
    key: SigningKey = pub.key  # type: ignore[attr-defined]
    return archive, key.sign_release(hashlib.sha256(archive).hexdigest(), name, version)


def bench_search(home: Path, n: int = 10_000) -> None:
    registry = Registry.open(home / "search")
    pub = make_publisher(registry, "bench")
    words = ["summarize", "translate", "classify", "extract", "route", "audit", "plan", "chat"]
    # Rows go in directly (publishing 10,000 archives would measure publish, not search); the
    # schema's triggers keep the search index in step, as they do for real publishes.
    with write_session(registry.engine) as s:
        for i in range(n):
            w = words[i % len(words)]
            row = Package(
                name=f"bench/{w}-{i}", normalized_name=f"bench/{w}-{i}", namespace_id=1,
                publisher_id=pub.principal.publisher_id, summary=f"Agent {i} that can {w} text",
                keywords=f"|{w}|bench|", capabilities=f"|{w}|", template_names=f"|bench/{w}-{i}|",
                latest_version="1.0.0", downloads=i % 97, review_count=i % 7, stars_sum=(i % 7) * 4,
            )
            s.add(row)
    queries = [("summarize", "relevance"), ("translate text", "rating"), ("", "downloads"),
               ("audit", "recent"), ("agent 42", "relevance"), ("", "rating")]
    if registry.search("summarize").total != n // len(words):
        raise SystemExit("search benchmark: the seeded packages are not all searchable")
    samples = []
    for _ in range(10):
        for q, sort in queries:
            start = time.perf_counter()
            registry.search(q, sort=sort)
            samples.append(time.perf_counter() - start)
    emit("registry.search_10k_p50_ms", percentile(samples, 50) * 1000, "ms",
         p95_ms=round(percentile(samples, 95) * 1000, 3))
    registry.close()


def bench_ed25519() -> None:
    key = SigningKey.generate()
    digest = "ab" * 32
    sig = key.sign_release(digest, "bench/x", "1.0")
    emit("registry.ed25519_sign_us",
         median_time(lambda: key.sign_release(digest, "bench/x", "1.0"), 20, 100) * 1e6, "us")
    emit("registry.ed25519_verify_us",
         median_time(lambda: verify_release(key.public_bytes, sig, digest, "bench/x", "1.0"),
                     20, 100) * 1e6, "us")


def main(prefix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if "registry.publish_per_s".startswith(prefix) or prefix in ("", "registry"):
            bench_publish(home)
        if "registry.resolve_1k_ms".startswith(prefix) or prefix in ("", "registry"):
            bench_resolve(home)
        if "registry.search_10k_p50_ms".startswith(prefix) or prefix in ("", "registry"):
            bench_search(home)
        if prefix in ("", "registry") or prefix.startswith("registry.ed25519"):
            bench_ed25519()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")

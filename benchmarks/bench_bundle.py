# groups: trust
"""Installing from a signed offline bundle.

    python benchmarks/run.py trust.bundle   # trust.bundle_install_ms

`trust.bundle_install_ms`: ten agents (each ~1 KB, one example) in one bundle, installed into a
fresh home by `marketplace.client.offline.install_bundle` with no network: read the bundle
(every member's sha256, the bundle signature), the revocation check, the preflight (each
release's publisher key pinned on first use, its v2 signature and file record), then per agent
the installer's own checks again, vetting of its example in the sandbox (warm: the compiled
runner is loaded once before timing), staging and one lockfile commit per agent. The bundle is
built in process, signed by a generated publisher and bundler key; it carries no release-log
proofs (verifying one is `trust.inclusion_verify_us`, microseconds). Median of rounds; printed,
never asserted (target: <= 1,000 ms).
"""

from __future__ import annotations

import base64
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _util import emit

from marketplace.client.bundle import BundledRelease, read_bundle, write_bundle
from registry.archive import open_archive, record_digest
from registry.signing import SigningKey
from tests.marketplace.conftest import make_package

AGENTS = 10
ROUNDS = 5


def make_bundle(work: Path) -> bytes:
    publisher = SigningKey.generate()
    releases, members = [], {}
    for i in range(AGENTS):
        name = f"bench/agent{i}"
        archive = make_package(work, name, "1.0.0")
        digest = hashlib.sha256(archive).hexdigest()
        signature = publisher.sign_release(digest, name, "1.0.0",
                                           record_digest(open_archive(archive)))
        release = BundledRelease(name=name, version="1.0.0", digest=digest, size=len(archive),
                                 key_id=publisher.key_id, publisher="bench",
                                 signature=base64.b64encode(signature).decode())
        releases.append(release)
        members[release.archive] = archive
    key = {"key_id": publisher.key_id, "publisher": "bench",
           "public_key": base64.b64encode(publisher.public_bytes).decode()}
    members["keys/bench.json"] = json.dumps([key]).encode()
    return write_bundle("https://registry.invalid", releases, members, SigningKey.generate())


def bench_bundle_install() -> None:
    from marketplace.client.installer import sandbox_vetter
    from marketplace.client.offline import install_bundle
    from sandbox import Sandbox

    Sandbox().ensure_ready()
    with tempfile.TemporaryDirectory(prefix="af-bundle-bench-") as tmp:
        work = Path(tmp)
        data = make_bundle(work)
        samples = []
        for i in range(ROUNDS + 1):  # the first round warms imports and the sandbox pool
            start = time.perf_counter()
            result = install_bundle(read_bundle(data), work / f"home{i}", vetter=sandbox_vetter(),
                                    package_check=lambda manifest: None)
            elapsed = time.perf_counter() - start
            assert len(result.installed) == AGENTS
            if i:
                samples.append(elapsed)
    emit("trust.bundle_install_ms", statistics.median(samples) * 1000, "ms", agents=AGENTS,
         rounds=ROUNDS)


def main(prefix: str) -> None:
    if "trust.bundle_install_ms".startswith(prefix):
        bench_bundle_install()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")

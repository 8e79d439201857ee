# groups: install
"""End-to-end install time.

    python benchmarks/run.py install   # install.e2e_ms, install.cli_ms, install.verify_20_files_ms

`install.e2e_ms`: a ~20 KB agent published on a real server (`agentfactory serve` under uvicorn
on 127.0.0.1), installed into a fresh home each round by `marketplace.client.installer.Installer`:
resolve, download, sha256, key pinning, signature, vetting of its examples in the sandbox (warm:
the compiled runner is cached and loaded in this process), atomic unpack, lockfile. Median of
rounds. `install.cli_ms` is the same through `agentfactory install` as a subprocess (Python
start-up and loading the cached runner included). The CLI's start-up figures (`cli.*`) are
printed by `bench_cli.py`.

`install.verify_20_files_ms`: the check every load of an installed agent runs first
(`marketplace.client.integrity.verify_installed`) on a 20-file agent: read the signed RECORD
and SIGNATURE, verify the Ed25519 signature, walk the folder, hash and compare every file.
Median of many calls, warm page cache (target: <= 2 ms). Figures are printed, never asserted.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import emit, median_time

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("agentfactory")
ROUNDS = 9


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _start_server(home: Path) -> tuple[str, subprocess.Popen[bytes]]:
    import httpx

    port = _free_port()
    env = {**os.environ, "AGENTFACTORY_HOME": str(home), "AGENTFACTORY_BOOTSTRAP": "0"}
    proc = subprocess.Popen(
        [str(SCRIPT), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return url, proc
        except httpx.TransportError:
            time.sleep(0.05)  # bounded poll while the server boots
    proc.kill()
    raise RuntimeError("server did not start")


def _publish_20kb(url: str, work: Path) -> tuple[str, int]:
    from marketplace.client.http import MarketplaceClient
    from marketplace.client.scaffold import scaffold
    from registry.archive import build_archive
    from registry.signing import SigningKey

    key = SigningKey.generate()
    pkg = work / "pkg"
    scaffold(pkg, "bench/words")
    # Hex of random bytes compresses about 2:1, so ~40 KB of it makes a ~20 KB archive.
    (pkg / "NOTES.md").write_text(os.urandom(15_500).hex())
    data = build_archive(pkg)
    from registry.archive import read_archive, record_digest

    package = read_archive(data)
    with MarketplaceClient(url) as anon:
        token = anon.register("bench", "bench").token
    with MarketplaceClient(url, token) as client:
        client.add_key(key.public_bytes)
        signature = key.sign_release(package.digest, "bench/words", "1.0.0",
                                     record_digest(package.files))
        client.publish(data, signature, key.key_id)
    return "bench/words", len(data)


def bench_install() -> None:
    from marketplace.client.http import MarketplaceClient
    from marketplace.client.installer import Installer, sandbox_vetter
    from sandbox import Sandbox

    with tempfile.TemporaryDirectory(prefix="af-bench-install-") as tmp:
        work = Path(tmp)
        url, proc = _start_server(work / "server")
        try:
            name, size = _publish_20kb(url, work)
            Sandbox().ensure_ready()  # warm: build (first use on this machine) or load the cache
            samples = []
            with MarketplaceClient(url) as client:
                for i in range(ROUNDS + 1):
                    installer = Installer(client, work / f"home{i}", vetter=sandbox_vetter())
                    start = time.perf_counter()
                    installer.install(name)
                    if i:  # the first round warms this process's runtime and connections
                        samples.append(time.perf_counter() - start)
            emit("install.e2e_ms", _median_ms(samples), "ms", target="<= 500",
                 archive_bytes=size, rounds=ROUNDS)
            cli = []
            for i in range(3):
                env = {**os.environ, "AGENTFACTORY_HOME": str(work / f"cli{i}"),
                       "AGENTFACTORY_URL": url}
                start = time.perf_counter()
                subprocess.run([str(SCRIPT), "install", name], check=True, env=env,
                               capture_output=True)
                cli.append(time.perf_counter() - start)
            emit("install.cli_ms", _median_ms(cli), "ms", rounds=3,
                 note="subprocess: interpreter start-up and runner load included")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def bench_verify() -> None:
    """Install a 20-file agent the way the installer unpacks it, then time its load check."""
    import base64
    import hashlib

    from marketplace.client.integrity import verify_installed, write_install_record
    from marketplace.client.lockfile import LockEntry, VettingSummary
    from marketplace.client.scaffold import scaffold
    from registry.archive import build_archive, extract_package, record_digest
    from registry.signing import SigningKey

    with tempfile.TemporaryDirectory(prefix="af-bench-verify-") as tmp:
        pkg = Path(tmp) / "pkg"
        scaffold(pkg, "bench/files")
        count = sum(1 for p in pkg.rglob("*") if p.is_file())
        for i in range(20 - count):  # source and data files of a few KB, like a real agent
            (pkg / "lib" / f"module_{i:02}.py").parent.mkdir(exist_ok=True)
            (pkg / "lib" / f"module_{i:02}.py").write_text(f"# {i}\n" + os.urandom(1500).hex())
        data = build_archive(pkg)
        root = Path(tmp) / "installed"
        package = extract_package(data, root)
        assert len(package.files) == 20, len(package.files)
        key = SigningKey.generate()
        digest = hashlib.sha256(data).hexdigest()
        entry = LockEntry(
            name="bench/files", version=package.manifest.version, digest=digest,
            size=len(data), key_id=key.key_id, publisher="bench",
            public_key=base64.b64encode(key.public_bytes).decode(),
            vetting=VettingSummary(passed=True),
        )
        signature = key.sign_release(digest, entry.name, entry.version,
                                     record_digest(package.files))
        write_install_record(root, package.files, entry, signature)
        verify_installed(root, entry)  # warm: page cache, imports
        seconds = median_time(lambda: verify_installed(root, entry), 31, 20)
        emit("install.verify_20_files_ms", seconds * 1000, "ms", target="<= 2", files=20,
             bytes=sum(map(len, package.files.values())))


def main(prefix: str) -> None:
    """Run only what prints a figure named with `prefix` (the e2e run starts a server)."""
    if "install.verify_20_files_ms".startswith(prefix):
        bench_verify()
    if any(name.startswith(prefix) for name in ("install.e2e_ms", "install.cli_ms")):
        bench_install()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1] if len(sys.argv) > 1 else "")

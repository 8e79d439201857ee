# groups: api peer
"""Marketplace API throughput and latency, and the peer (pypiserver) measured in the same run.

    python benchmarks/run.py api     # api.* and peer.* figures

The server runs under uvicorn (`agentfactory serve`) on 127.0.0.1 in its own process, seeded
with packages through the real publish endpoint. The load generator is a third process: C
asyncio connections with HTTP/1.1 keep-alive (reconnecting when a server closes), each loop
bounded in request count and in wall time. pypiserver is installed on first use into a cached
venv (~/.cache/agentfactory-bench) and serves one project's simple-index page; it is loaded by
the same generator, so the ratio is like for like. Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import emit, percentile

ROOT = Path(__file__).resolve().parent.parent
PEER_VENV = Path.home() / ".cache" / "agentfactory-bench" / "pypiserver"


# ----------------------------------------------------------------------------- load generator


async def _worker(
    host: str, port: int, path: str, deadline: float, budget: list[int], latencies: list[float]
) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n\r\n".encode()
    reader = writer = None
    while budget[0] > 0 and time.perf_counter() < deadline:
        budget[0] -= 1
        if writer is None:
            reader, writer = await asyncio.open_connection(host, port)
        assert reader is not None
        start = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if " 200 " not in lines[0] + " ":
            raise RuntimeError(f"{path}: {lines[0]}")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)
        }
        if "content-length" in headers:
            await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await reader.readline()).strip(), 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await reader.read()  # body runs to connection close
            headers["connection"] = "close"
        latencies.append(time.perf_counter() - start)
        if headers.get("connection", "").lower() == "close" or lines[0].startswith("HTTP/1.0"):
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _load(url: str, concurrency: int, requests: int, seconds: float) -> dict[str, float]:
    rest = url.removeprefix("http://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    latencies: list[float] = []
    budget = [requests]
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(
        *(
            _worker(host, int(port), "/" + path, deadline, budget, latencies)
            for _ in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - start
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "n": len(latencies),
    }


def load(url: str, concurrency: int, requests: int, seconds: float) -> dict[str, float]:
    """Run the generator in a separate process so it does not share the server's interpreter."""
    out = subprocess.run(
        [sys.executable, __file__, "--load", url, str(concurrency), str(requests), str(seconds)],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ----------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def start_marketplace(home: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = {**os.environ, "AGENTFACTORY_HOME": str(home), "AGENTFACTORY_PUBLISH_RATE": "0"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cli.main import main; main()",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/healthz", proc)
    return url, proc


def package_dir(root: Path, name: str, version: str) -> Path:
    short = name.split("/")[1]
    folder = root / f"{short}-{version}"
    (folder / "templates").mkdir(parents=True)
    manifest = {
        "name": name,
        "version": version,
        "summary": f"Benchmark agent {short}",
        "license": "MIT",
        "keywords": ["bench"],
        "templates": [f"templates/{short}.json"],
    }
    template = {"name": name, "version": version, "capabilities": ["text.echo"], "tools": []}
    (folder / "agent.json").write_text(json.dumps(manifest))
    (folder / "templates" / f"{short}.json").write_text(json.dumps(template))
    (folder / "process.py").write_text("def process(task):\n    return {'echo': task}\n")
    (folder / "README.md").write_text(f"# {name}\n\nA benchmark agent.\n")
    return folder


def seed_and_publish(url: str, work: Path, count: int) -> float:
    """Register, add a key, publish `count` packages; return publishes per second."""
    import httpx

    from registry.archive import build_archive
    from registry.signing import SigningKey

    key = SigningKey.generate()
    with httpx.Client(base_url=url, timeout=30) as client:
        token = client.post("/api/v1/publishers", json={"name": "bench", "namespace": "bench"})
        auth = {"Authorization": f"Bearer {token.json()['token']}"}
        client.post(
            "/api/v1/keys",
            headers=auth,
            json={"public_key": base64.b64encode(key.public_bytes).decode()},
        ).raise_for_status()
        uploads = []
        for i in range(count):
            name = f"bench/agent{i}"
            archive = build_archive(package_dir(work, name, "1.0.0"))
            digest = hashlib.sha256(archive).hexdigest()
            signature = base64.b64encode(key.sign_release(digest, name, "1.0.0")).decode()
            uploads.append((archive, signature))
        start = time.perf_counter()
        for archive, signature in uploads:
            client.post(
                "/api/v1/packages",
                headers=auth,
                data={"signature": signature, "key_id": key.key_id},
                files={"archive": ("a.zip", archive, "application/zip")},
            ).raise_for_status()
        return count / (time.perf_counter() - start)


def start_pypiserver(work: Path) -> tuple[str, subprocess.Popen[bytes]] | None:
    exe = PEER_VENV / "bin" / "pypi-server"
    if not exe.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
            subprocess.run(
                [str(PEER_VENV / "bin" / "pip"), "install", "-q", "pypiserver"],
                check=True,
                timeout=300,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"pypiserver unavailable: {exc}", file=sys.stderr)
            return None
    packages = work / "pypi"
    packages.mkdir()
    for version in ("1.0", "1.1", "2.0"):
        (packages / f"demo-agent-{version}.tar.gz").write_bytes(b"\0" * 1024)
    port = free_port()
    proc = subprocess.Popen(
        [str(exe), "run", "-i", "127.0.0.1", "-p", str(port), str(packages)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/simple/demo-agent/", proc)
    return url, proc


def measure_api(work: Path) -> None:
    url, proc = start_marketplace(work / "home")
    try:
        emit("api.publish_per_s", seed_and_publish(url, work, 40), "1/s")
        detail = f"{url}/api/v1/packages/bench/agent7"
        load(detail, 4, 200, 10)  # warm-up: caches, connections, lazy imports
        c1 = load(detail, 1, 3000, 8)
        emit("api.detail_c1_rps", c1["rps"], "1/s", p50_ms=round(c1["p50_ms"], 2))
        c16 = load(detail, 16, 60000, 10)
        emit("api.detail_c16_rps", c16["rps"], "1/s", p50_ms=round(c16["p50_ms"], 2))
        emit("api.detail_c16_p99_ms", c16["p99_ms"], "ms")
    finally:
        stop(proc)


def measure_peer(work: Path) -> None:
    peer = start_pypiserver(work)
    if peer is None:
        return
    url, proc = peer
    try:
        page = f"{url}/simple/demo-agent/"
        load(page, 4, 50, 5)
        c16 = load(page, 16, 3000, 10)
        extra = {"p50_ms": round(c16["p50_ms"], 2), "p99_ms": round(c16["p99_ms"], 2)}
        emit("peer.pypiserver_c16_rps", c16["rps"], "1/s", **extra)
    finally:
        stop(proc)


def main() -> None:
    # Both are always measured, so the ratio comes from one run; run.py filters the lines.
    with tempfile.TemporaryDirectory(prefix="af-bench-api-") as tmp:
        measure_api(Path(tmp))
        measure_peer(Path(tmp))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        _, _, target, conc, count, secs = sys.argv
        print(json.dumps(asyncio.run(_load(target, int(conc), int(count), float(secs)))))
    else:
        main()

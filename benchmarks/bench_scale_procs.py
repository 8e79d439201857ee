"""Scale-out on one machine: several API processes over one database.

    python benchmarks/run.py scale

`scale.detail_rps_2_over_1`: package-detail reads per second from `agentfactory serve
--workers 2` divided by those from `--workers 1`, on the same data directory (SQLite), with 32
keep-alive connections from `wrk` (installed by `scripts/services start wrk`; `generator` says
which was used). Each side is the median of three rounds after a warm-up. Without wrk, the
generator is `bench_api.load`, in Python: it costs about as much per request as the cached read
it asks for, so on a 2-core machine it takes the share of the second server process and bounds
the ratio near 1.2 (measured: 1.24 with it, 1.60 with wrk, same machine, same hour).

`scale.visibility_p99_ms`: how long after a publish is acknowledged by one API process the
other serves it: two `agentfactory serve` processes (own ports) on one PostgreSQL database
(`$AGENTFACTORY_TEST_PG_URL`, else the server of `scripts/pg`; without one, a shared SQLite
home, said on stderr), a publish on A, then reads on B until the new version shows; p99 over
the samples. Figures are printed, never asserted.
"""

# groups: scale

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _util import emit, percentile
from bench_api import free_port, load, package_dir, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent
NAME = "bench/agent"


def serve(home: Path, env: dict[str, str], workers: int = 1) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import main; main()", "serve", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning", "--workers", str(workers)],
        env={**os.environ, "AGENTFACTORY_HOME": str(home), **env}, cwd=ROOT,
        stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/healthz", proc, timeout=120)
    return url, proc


class Publisher:
    """A registered publisher that publishes versions of `NAME` through any server."""

    def __init__(self, url: str, work: Path) -> None:
        import httpx

        from registry.signing import SigningKey

        self.key = SigningKey.generate()
        self.work = work
        with httpx.Client(base_url=url, timeout=30) as client:
            reply = client.post("/api/v1/publishers", json={"name": "bench", "namespace": "bench"})
            reply.raise_for_status()
            self.auth = {"Authorization": f"Bearer {reply.json()['token']}"}
            client.post("/api/v1/keys", headers=self.auth, json={
                "public_key": base64.b64encode(self.key.public_bytes).decode()
            }).raise_for_status()

    def upload(self, version: str) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
        """The form of a publish of `version` (built and signed before any clock starts)."""
        from registry.archive import build_archive

        archive = build_archive(package_dir(self.work, NAME, version))
        digest = hashlib.sha256(archive).hexdigest()
        signature = base64.b64encode(self.key.sign_release(digest, NAME, version)).decode()
        return ({"signature": signature, "key_id": self.key.key_id},
                {"archive": ("a.zip", archive, "application/zip")})


BASE_ENV = {"AGENTFACTORY_VET_UPLOADS": "0", "AGENTFACTORY_BOOTSTRAP": "0",
            "AGENTFACTORY_PUBLISH_RATE": "0", "AGENTFACTORY_REGISTER_RATE": "0"}


def detail_rps_2_over_1(work: Path) -> None:
    import httpx

    home = work / "rps-home"
    rps: dict[int, float] = {}
    for workers in (1, 2):
        url, proc = serve(home, BASE_ENV, workers)
        try:
            if workers == 1:
                publisher = Publisher(url, work)
                data, files = publisher.upload("1.0.0")
                httpx.post(f"{url}/api/v1/packages", data=data, files=files,
                           headers=publisher.auth, timeout=30).raise_for_status()
            detail = f"{url}/api/v1/packages/{NAME}"
            hammer(detail, 3)  # warm-up: caches, connections, every process
            rps[workers] = statistics.median(hammer(detail, 6) for _ in range(3))
        finally:
            stop(proc)
    emit("scale.detail_rps_2_over_1", rps[2] / rps[1], "ratio",
         rps_1=round(rps[1]), rps_2=round(rps[2]), generator=generator())


@functools.cache
def generator() -> str:
    """"wrk" when it is installed (`scripts/services start wrk` installs it), else "python"."""
    if shutil.which("wrk") is None:
        subprocess.run([str(ROOT / "scripts" / "services"), "start", "wrk"], check=False)
    return "wrk" if shutil.which("wrk") else "python"


def hammer(url: str, seconds: float, connections: int = 32) -> float:
    """Requests per second on `url`: wrk (one thread, keep-alive connections) when installed,
    else `bench_api.load` (Python, in a process of its own), which costs about as much per
    request as the server's cached read and so bounds the ratio on a small machine."""
    if generator() == "python":
        return float(load(url, connections, 10_000_000, seconds)["rps"])
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if found is None or errors is not None:
        raise RuntimeError(f"wrk: {out.strip()}")
    return float(found.group(1))


def _database() -> str | None:
    url = os.environ.get("AGENTFACTORY_TEST_PG_URL")
    if url:
        return url
    try:
        done = subprocess.run([str(ROOT / "scripts" / "pg"), "url"], capture_output=True,
                              text=True, timeout=30, check=True)
        status = subprocess.run([str(ROOT / "scripts" / "pg"), "status"], timeout=30)
    except (subprocess.SubprocessError, OSError):
        return None
    return done.stdout.strip().splitlines()[-1] if status.returncode == 0 else None


def visibility_p99_ms(work: Path, samples: int = 60) -> None:
    import httpx
    from sqlalchemy import make_url, text

    from registry.db import make_engine

    env = dict(BASE_ENV)
    server_url, database = _database(), None
    if server_url is not None:
        database = f"af_bench_{uuid.uuid4().hex[:12]}"
        admin = make_engine(server_url).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {database}"))
        env["AGENTFACTORY_DATABASE_URL"] = make_url(server_url).set(
            database=database).render_as_string(hide_password=False)
        homes = (work / "vis-a", work / "vis-b")
    else:
        print("scale.visibility_p99_ms: no PostgreSQL; two processes on one SQLite home",
              file=sys.stderr)
        homes = (work / "vis", work / "vis")
    procs = []
    try:
        url_a, proc = serve(homes[0], env)
        procs.append(proc)
        url_b, proc = serve(homes[1], env)
        procs.append(proc)
        publisher = Publisher(url_a, work / "vis-packages")
        uploads = [publisher.upload(f"1.{i}.0") for i in range(samples)]
        delays, stale_reads = [], 0
        with httpx.Client(base_url=url_a, timeout=30) as a, \
                httpx.Client(base_url=url_b, timeout=30) as b:
            for i, (data, files) in enumerate(uploads):
                b.get(f"/api/v1/packages/{NAME}")  # B has the previous answer cached
                a.post("/api/v1/packages", data=data, files=files,
                       headers=publisher.auth).raise_for_status()
                acknowledged = time.perf_counter()
                for _ in range(1000):
                    reply = b.get(f"/api/v1/packages/{NAME}")
                    if reply.json()["latest_version"] == f"1.{i}.0":
                        break
                    stale_reads += 1
                delays.append(time.perf_counter() - acknowledged)
        emit("scale.visibility_p99_ms", percentile(delays, 99) * 1000, "ms",
             median_ms=round(statistics.median(delays) * 1000, 2), stale_reads=stale_reads,
             database="postgresql" if database else "sqlite")
    finally:
        for proc in procs:
            stop(proc)
        if server_url is not None and database is not None:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            admin.dispose()


def main(prefix: str) -> None:
    with tempfile.TemporaryDirectory(prefix="af-bench-scale-") as tmp:
        work = Path(tmp)
        if "scale.detail_rps_2_over_1".startswith(prefix):
            detail_rps_2_over_1(work)
        if "scale.visibility_p99_ms".startswith(prefix):
            visibility_p99_ms(work)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")

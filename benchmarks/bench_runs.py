# groups: runs
"""Runs through the API, embedded engine (`agentfactory serve` with its local worker pool).

    python benchmarks/run.py runs

- `runs.submit_to_result_p50_ms` (and p90): one client, one run at a time, of the built-in
  native agent `documentaliste` on a short text: `POST /api/v1/runs?wait=30`, which answers
  with the final run. Median of `SEQUENTIAL` runs after a warm-up.
- `runs.per_s`: sustained throughput, `CONCURRENCY` clients (aiohttp, one event loop) each
  submitting runs of the same agent with `?wait` over keep-alive connections, `TOTAL` runs
  (after as many to warm up); every result is checked. A request that meets a connection the
  server just closed is sent again (submissions carry an idempotency key); `retried` says how
  many were. `runs.per_s_two_requests`: the same, with the submission answered at once and the
  result long-polled with `GET /runs/{id}?wait` (two requests per run).
- `runs.sandboxed_per_s`: the same with a community agent installed in the server's home and
  run under the sandbox (policy `always`), `SANDBOXED_TOTAL` runs.

The server is `agentfactory serve` as the README starts it: its run engine in a process of its
own (`runs.engine_process`), 2 run workers (the default), here without quotas. The load generator
is this process, on the same cores. Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import emit, percentile

ROOT = Path(__file__).resolve().parent.parent
SEQUENTIAL = 300
CONCURRENCY = 32
TOTAL = 3000
SANDBOXED_TOTAL = 600
TEXT = "Agents run in worker processes. The API process only queues them and waits."


def start(home: Path) -> tuple[str, subprocess.Popen[bytes]]:
    from bench_api import free_port, wait_ready

    port = free_port()
    env = {
        **os.environ, "AGENTFACTORY_HOME": str(home), "AGENTFACTORY_BOOTSTRAP": "0",
        "AGENTFACTORY_VET_UPLOADS": "0", "AGENTFACTORY_RUN_MAX_CONCURRENT": "0",
        "AGENTFACTORY_RUN_MAX_PER_HOUR": "0", "AGENTFACTORY_SANDBOX_POLICY": "always",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import main; main()", "serve", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/healthz", proc)
    return url, proc


def register(url: str) -> dict[str, str]:
    import httpx

    reply = httpx.post(f"{url}/api/v1/publishers", json={"name": "bench", "namespace": "bench"})
    reply.raise_for_status()
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def run_once(client: Any, agent: str, task: dict[str, Any]) -> dict[str, Any]:
    """One run, its result in the answer to its submission (`POST /runs?wait`)."""
    done = client.post("/api/v1/runs", params={"wait": 30}, json={"agent": agent, "input": task})
    body: dict[str, Any] = done.json()
    assert done.status_code == 200 and body["status"] == "succeeded", body
    return body


def sequential(url: str, auth: dict[str, str]) -> list[float]:
    import httpx

    samples = []
    with httpx.Client(base_url=url, headers=auth, timeout=60) as client:
        for _ in range(30):  # warm-up: both workers, the template cache, connections
            run_once(client, "documentaliste", {"text": TEXT})
        for _ in range(SEQUENTIAL):
            start_ = time.perf_counter()
            run_once(client, "documentaliste", {"text": TEXT})
            samples.append((time.perf_counter() - start_) * 1000)
    return samples


async def sustained(url: str, auth: dict[str, str], agent: str, total: int,
                    task_of: Any, check: Any, *, one_request: bool = True) -> tuple[float, int]:
    """Runs per second, and how many requests were sent again (see `retrying`). Each client
    submits with `?wait` and gets the result in the answer (`one_request`), or submits and then
    long-polls `GET /runs/{id}?wait`."""
    import aiohttp

    budget = [total]
    retries = [0]

    async def retrying(session: aiohttp.ClientSession, method: str, path: str,
                       **options: Any) -> tuple[int, dict[str, Any]]:
        # On a loaded machine a keep-alive connection is now and then closed by the server as
        # the next request goes out. Both requests are safe to send again: the submission
        # carries an idempotency key, the long poll only reads.
        for attempt in range(3):
            try:
                async with session.request(method, path, **options) as reply:
                    return reply.status, await reply.json()
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
                if attempt == 2:
                    raise
                retries[0] += 1
        raise AssertionError("unreachable")

    async def loop(session: aiohttp.ClientSession) -> None:
        while budget[0] > 0:
            budget[0] -= 1
            n = budget[0]
            body = {"agent": agent, "input": task_of(n), "idempotency_key": secrets.token_hex(8)}
            wait = {"wait": "60"}
            status, run = await retrying(
                session, "POST", "/api/v1/runs", json=body, params=wait if one_request else None
            )
            # 200: the run ended within the wait, or a retried submission reached the server.
            assert status in (200, 202), run
            if run["status"] not in ("succeeded", "failed", "timed_out", "cancelled"):
                status, run = await retrying(
                    session, "GET", f"/api/v1/runs/{run['id']}", params=wait
                )
            assert run["status"] == "succeeded" and check(n, run["result"]), run

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(url, headers=auth, connector=connector,
                                     timeout=timeout) as session:
        await asyncio.gather(*(loop(session) for _ in range(CONCURRENCY)))  # warm-up
        budget[0], retries[0] = total, 0
        started = time.perf_counter()
        await asyncio.gather(*(loop(session) for _ in range(CONCURRENCY)))
        return total / (time.perf_counter() - started), retries[0]


def install_sandboxed(home: Path, scratch: Path) -> str:
    """A community agent (`acme/words`, counts words) installed in `home`, as `install` does."""
    sys.path.insert(0, str(ROOT))
    from marketplace.client.installer import Installer, sandbox_vetter
    from registry.signing import SigningKey
    from tests.marketplace.fake_registry import FakeRegistry

    registry = FakeRegistry(scratch)
    key = SigningKey.generate()
    registry.add_key("acme", key)
    registry.publish("acme", key, "acme/words", "1.0")
    Installer(registry.client(), home, vetter=sandbox_vetter()).install("acme/words")
    return "acme/words"


def wanted(prefix: str, *names: str) -> bool:
    """Whether any of `names` is asked for by `prefix` (`runs`, `runs.per_s`...)."""
    return any(name.startswith(prefix) for name in names)


def main(prefix: str = "runs") -> None:
    figures = ("runs.submit_to_result_p50_ms", "runs.submit_to_result_p90_ms", "runs.per_s",
               "runs.per_s_two_requests", "runs.sandboxed_per_s")
    if not wanted(prefix, *figures):
        return  # another script of the `runs` group prints what was asked for
    with tempfile.TemporaryDirectory(prefix="af-bench-runs-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        agent = install_sandboxed(home, Path(tmp) / "src")
        url, proc = start(home)
        try:
            auth = register(url)
            if wanted(prefix, *figures[:2]):
                samples = sequential(url, auth)
                emit("runs.submit_to_result_p50_ms", statistics.median(samples), "ms",
                     target=20, runs=len(samples))
                emit("runs.submit_to_result_p90_ms", percentile(samples, 90), "ms")
            if wanted(prefix, "runs.per_s"):
                per_s, retried = asyncio.run(sustained(
                    url, auth, "documentaliste", TOTAL, lambda n: {"text": f"{TEXT} {n}"},
                    lambda n, result: result["word_count"] == 14,
                ))
                emit("runs.per_s", per_s, "runs/s", target=300, concurrency=CONCURRENCY,
                     runs=TOTAL, retried=retried)
            if wanted(prefix, "runs.per_s_two_requests"):
                per_s, retried = asyncio.run(sustained(
                    url, auth, "documentaliste", TOTAL, lambda n: {"text": f"{TEXT} {n}"},
                    lambda n, result: result["word_count"] == 14, one_request=False,
                ))
                emit("runs.per_s_two_requests", per_s, "runs/s", concurrency=CONCURRENCY,
                     runs=TOTAL, retried=retried)
            if wanted(prefix, "runs.sandboxed_per_s"):
                words = " ".join(["word"] * 7)
                sandboxed, retried = asyncio.run(sustained(
                    url, auth, agent, SANDBOXED_TOTAL, lambda n: {"text": f"{words} {n}"},
                    lambda n, result: result["words"] >= 7,
                ))
                emit("runs.sandboxed_per_s", sandboxed, "runs/s", target=100,
                     concurrency=CONCURRENCY, runs=SANDBOXED_TOTAL, retried=retried)
        finally:
            from bench_api import stop

            stop(proc)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else "runs")

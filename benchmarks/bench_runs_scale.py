"""Runs: how throughput scales with worker processes, for a CPU-bound agent.

    python benchmarks/run.py runs.scale

`runs.scale_2_over_1` is the throughput of the embedded engine with two worker processes over
its throughput with one (`AGENTFACTORY_RUN_WORKERS`), through the API (an in-process app and its
real worker processes), for `genie_logiciel` analysing a large Python file (about 100 KB: a few
hundred milliseconds of pure CPU per run). Two `agentfactory worker` processes on the
procrastinate engine use the same slot machinery, one slot each, so they scale the same way.
Target on two cores: at least 1.6. The machine's other load shows in the figure; it is printed,
never asserted.
"""

# groups: runs

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _util import emit

ROOT = Path(__file__).resolve().parent.parent
RUNS = 12
SOURCE = "\n".join(
    (ROOT / "runs" / name).read_text(encoding="utf-8")
    for name in ("slots.py", "store.py", "engine.py", "distributed.py")
) * 2


def throughput(workers: int, home: Path) -> float:
    """Runs per second of `RUNS` CPU-bound runs submitted at once to `workers` processes."""
    from fastapi.testclient import TestClient

    from marketplace.server.app import create_app
    from marketplace.server.settings import RateLimit, ServerSettings
    from runs.settings import RunSettings

    settings = ServerSettings(
        home=home, bootstrap=False, vet_uploads=False, register_rate=RateLimit(0, 0.0),
        runs=RunSettings(workers=workers, max_concurrent=0, max_per_hour=0),
    )
    with TestClient(create_app(settings)) as client:
        reply = client.post("/api/v1/publishers", json={"name": "bench", "namespace": "bench"})
        auth = {"Authorization": f"Bearer {reply.json()['token']}"}
        body = {"agent": "genie_logiciel", "input": {"source": SOURCE}}

        def batch(count: int) -> None:
            ids = [client.post("/api/v1/runs", json=body, headers=auth).json()["id"]
                   for _ in range(count)]
            for run_id in ids:
                done = client.get(f"/api/v1/runs/{run_id}", params={"wait": 60}, headers=auth)
                assert done.json()["status"] == "succeeded", done.text

        batch(workers)  # every worker process warm (imports, first analysis)
        started = time.perf_counter()
        batch(RUNS)
        return RUNS / (time.perf_counter() - started)


def main(prefix: str) -> None:
    if not "runs.scale".startswith(prefix) and not prefix.startswith("runs.scale"):
        return
    with tempfile.TemporaryDirectory() as tmp:
        one = throughput(1, Path(tmp) / "one")
        two = throughput(2, Path(tmp) / "two")
    emit("runs.scale_1_worker_per_s", one, "runs/s", agent="genie_logiciel")
    emit("runs.scale_2_workers_per_s", two, "runs/s", agent="genie_logiciel")
    emit("runs.scale_2_over_1", two / one, "x", engine="local", target=1.6)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")

# groups: api
"""`/healthz` and package reads while two hostile publishers attack vetting at publish.

    python benchmarks/run.py api.healthz     # api.healthz_p99_under_attack_ms and friends

`agentfactory serve` (uvicorn, vetting on, publish rate limit off so only the vetting caps
stand in the way) runs on 127.0.0.1 in its own process; `tests.reliability.vetting_attack`
drives the attack: two publishers, three threads each, uploading as fast as the server answers
packages of 20 examples that spin (`while True: pass`) or block in a WASI sleep, while one
client times `/healthz`, a package detail and a search in turn. Each example has 2 s and each
upload 6 s. The same probe before the attack gives the baseline of the machine's own load.
Figures are printed, never asserted (the target is `api.healthz_p99_under_attack_ms` <= 100).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _util import emit
from bench_api import ROOT, free_port, stop, wait_ready

from tests.reliability.vetting_attack import percentile, run_attack

ENV = {
    "AGENTFACTORY_BOOTSTRAP": "0", "AGENTFACTORY_PUBLISH_RATE": "0",
    "AGENTFACTORY_VET_EXAMPLE_TIMEOUT": "2", "AGENTFACTORY_VET_UPLOAD_BUDGET": "6",
}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="af-bench-attack-") as tmp:
        port = free_port()
        env = {**os.environ, "AGENTFACTORY_HOME": str(Path(tmp) / "home"), **ENV}
        proc = subprocess.Popen(
            [sys.executable, "-c", "from cli.main import main; main()", "serve",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, cwd=ROOT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(f"{url}/healthz", proc)
            report = run_attack(url, threads_per_attacker=3, rounds=3, samples=500)
        finally:
            stop(proc)
    healthz, reads = report.healthz_ms, report.reads_ms
    emit("api.healthz_p99_under_attack_ms", percentile(healthz, 0.99), "ms",
         p50_ms=round(percentile(healthz, 0.50), 2), samples=len(healthz),
         attack_s=round(report.seconds, 1), attack_uploads=sum(report.attack_statuses.values()))
    emit("api.healthz_p99_before_attack_ms", percentile(report.baseline_healthz_ms, 0.99), "ms")
    emit("api.reads_p99_under_attack_ms", percentile(reads, 0.99), "ms",
         p50_ms=round(percentile(reads, 0.50), 2))


if __name__ == "__main__":
    main()

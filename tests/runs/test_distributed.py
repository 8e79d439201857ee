"""Scale-out: the API with `AGENTFACTORY_RUN_ENGINE=procrastinate` and two `agentfactory worker`
processes on a real PostgreSQL.

The first tests use a fresh database on the suite's server (`scripts/pg`); the outage test starts
a private cluster of its own (same binaries, its own data directory and port) so that stopping it
disturbs no other test. Every process and cluster a test starts is stopped when it ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.registry.databases import pg_server, pg_url_or_skip
from tests.runs.conftest import BLOCKER, register, wait_until

AGENTFACTORY = Path(sys.executable).with_name("agentfactory")
TEXT = "Two workers share the queue. Each run is written once."
LEASE_S = 2  # short, so a killed worker's run is delivered again within seconds


Start = Callable[[str], tuple[Any, "list[Worker]"]]


class Worker:
    """One `agentfactory worker` subprocess, its output in a file."""

    def __init__(self, name: str, url: str, root: Path, site: Path) -> None:
        self.out = root / f"{name}.out"
        self.err = root / f"{name}.err"
        env = {
            **os.environ,
            "AGENTFACTORY_DATABASE_URL": url,
            "AGENTFACTORY_HOME": str(root / f"{name}-home"),
            "AGENTFACTORY_RUN_LEASE": str(LEASE_S),
            "PYTHONPATH": str(site),  # the test-blocker plugin, installed as pip would
        }
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [str(AGENTFACTORY), "worker", "--concurrency", "1"],
                stdout=out, stderr=err, env=env, start_new_session=True,
            )

    def output(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def errors(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def cluster(tmp_path: Path, blocker_site: Path) -> Iterator[Start]:
    """`start(url)`: an API (in-process app over `url`, engine procrastinate) and two workers."""
    from fastapi.testclient import TestClient

    from marketplace.server.app import create_app
    from marketplace.server.settings import RateLimit, ServerSettings
    from runs.settings import RunSettings

    clients: list[Any] = []
    workers: list[Worker] = []

    def start(url: str) -> tuple[Any, list[Worker]]:
        settings = ServerSettings(
            home=tmp_path / "api-home", database_url=url, bootstrap=False, vet_uploads=False,
            register_rate=RateLimit(0, 0.0), token_rate=RateLimit(0, 0.0),
            runs=RunSettings(engine="procrastinate", lease_s=LEASE_S, max_concurrent=0,
                             max_per_hour=0),
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        workers.extend(Worker(f"w{i}", url, tmp_path, blocker_site) for i in (1, 2))
        return client, workers

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()
        for client in clients:
            client.__exit__(None, None, None)


@pytest.fixture
def database() -> Iterator[str]:
    server = pg_server()
    url = server.create()
    try:
        yield url
    finally:
        server.drop(url)


def holder(workers: list[Worker], run_id: str, status: str = "running") -> Worker:
    """The worker that says `run_id` is now `status`."""
    found: Worker = wait_until(
        lambda: next((w for w in workers if f"run {run_id} {status}" in w.output()), None),
        what=f"a worker says {run_id} is {status}",
    )
    return found


@pytest.mark.parametrize(
    ("command", "env", "says"),
    [
        (["worker"], {}, "agentfactory worker takes its runs from PostgreSQL, and "
                         "AGENTFACTORY_DATABASE_URL is not set"),
        (["worker"], {"AGENTFACTORY_DATABASE_URL": "sqlite:///runs.db"}, "is sqlite:..., not"),
        (["serve", "--port", "1"], {"AGENTFACTORY_RUN_ENGINE": "procrastinate"},
         "AGENTFACTORY_RUN_ENGINE='procrastinate' in the environment: needs a PostgreSQL"),
        (["serve", "--port", "1"], {"AGENTFACTORY_RUN_ENGINE": "celery"},
         "must be one of local, procrastinate"),
    ],
)
def test_scale_out_without_postgresql_is_one_line(
    tmp_path: Path, command: list[str], env: dict[str, str], says: str
) -> None:
    base = {k: v for k, v in os.environ.items() if k != "AGENTFACTORY_DATABASE_URL"}
    done = subprocess.run(
        [str(AGENTFACTORY), *command], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**base, "AGENTFACTORY_HOME": str(tmp_path), "AGENTFACTORY_VET_UPLOADS": "0", **env},
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr, done.stderr


def test_runs_through_the_api_complete_on_the_workers(
    database: str, cluster: Start
) -> None:
    api, workers = cluster(database)
    alice = register(api, "alice")
    submitted = [alice.submit("documentaliste", {"text": f"{TEXT} Run {i}."}) for i in range(6)]
    assert {s.status_code for s in submitted} == {202}
    for answer in submitted:
        done = alice.wait(answer.json()["id"])
        assert done["status"] == "succeeded", done
        assert done["result"]["word_count"] == 12 and done["attempt"] == 1
    echoed = alice.run(BLOCKER, {"echo": {"exact": [1, 2.5, "three"]}})
    assert echoed["result"]["echo"] == {"exact": [1, 2.5, "three"]}
    # Each run was written by exactly one worker, and that worker says so (just after).
    for run_id in [s.json()["id"] for s in submitted] + [echoed["id"]]:
        holder(workers, run_id, "succeeded")
        assert sum(f"run {run_id} succeeded" in w.output() for w in workers) == 1, run_id
    assert all(w.output().startswith("Agent Factory worker ") for w in workers)


def test_a_worker_killed_mid_run_leaves_no_run_running(
    database: str, cluster: Start, tmp_path: Path
) -> None:
    api, workers = cluster(database)
    bob = register(api, "bob")
    gate = tmp_path / "gate"
    run_id = bob.submit(BLOCKER, {"until": str(gate), "echo": "survived"}).json()["id"]
    victim = holder(workers, run_id)
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait()
    gate.touch()
    done = bob.wait(run_id)
    assert (done["status"], done["attempt"]) == ("succeeded", 2), done
    assert done["result"]["echo"] == "survived"
    assert holder(workers, run_id, "succeeded") is not victim
    events = api.get(f"/api/v1/runs/{run_id}/events", headers=bob.auth)
    assert "lease expired" in events.text


# ----------------------------------------------------------------------- the engine's server


class PrivateCluster:
    """A PostgreSQL cluster of this test alone: its own data directory and port."""

    def __init__(self) -> None:
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        initdb = shutil.which("initdb") or (str(binaries[-1]) if binaries else None)
        if initdb is None or os.geteuid() != 0 or shutil.which("runuser") is None:
            pg_url_or_skip()  # under CI, a missing server fails rather than skips
            pytest.skip("a private PostgreSQL cluster needs root and PostgreSQL's binaries")
        self.bin = Path(initdb).parent
        # Not under pytest's tmp_path: the postgres user must be able to reach the directory.
        self.dir = Path(tempfile.mkdtemp(prefix="af-private-pg-"))
        self.data = self.dir / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                          "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, program: str, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / program), *args],
                       check=True, capture_output=True)

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.dir} -c fsync=off -c timezone=UTC")
        self._as_postgres("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w",
                          "-t", "60", "-o", options, "start")

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    server = PrivateCluster()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def test_the_workers_outlive_their_database_going_down_and_back(
    private_cluster: PrivateCluster,
    cluster: Start,
    tmp_path: Path,
) -> None:
    api, workers = cluster(private_cluster.url)
    carol = register(api, "carol")
    assert carol.run("documentaliste", {"text": TEXT})["status"] == "succeeded"
    gate = tmp_path / "gate"
    run_ids = [carol.submit(BLOCKER, {"until": str(gate), "echo": i}).json()["id"]
               for i in range(4)]
    wait_until(lambda: sum(f"running ({BLOCKER}" in w.output() for w in workers) == 2,
               what="both workers run a blocked run")

    private_cluster.stop()
    wait_until(lambda: all("lease not renewed" in w.errors() for w in workers),
               what="both workers notice the outage")
    private_cluster.start()
    gate.touch()

    for i, run_id in enumerate(run_ids):
        done = carol.wait(run_id)
        assert (done["status"], done["result"]["echo"]) == ("succeeded", i), done
    assert carol.run("documentaliste", {"text": TEXT})["status"] == "succeeded"
    assert all(w.proc.poll() is None for w in workers)  # they reconnected rather than died

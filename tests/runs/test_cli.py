"""`agentfactory run --remote` and `agentfactory runs ...` against a real `agentfactory serve`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.marketplace.cli_runner import run_cli
from tests.marketplace.conftest import LiveServer, start_server, stop_server
from tests.plugin_dist import plugin_env
from tests.runs.conftest import BLOCKER

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, blocker_site: Path
) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("server") / "home"
    home.mkdir()
    env = {**plugin_env(blocker_site), "AGENTFACTORY_RUN_WORKERS": "1",
           "AGENTFACTORY_BOOTSTRAP": "0", "AGENTFACTORY_VET_UPLOADS": "0"}
    live, proc = start_server(home, env)
    yield live
    stop_server(proc)


@pytest.fixture(scope="module")
def env(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    reply = httpx.post(f"{server}/api/v1/publishers", json={"name": "cli", "namespace": "cli"})
    assert reply.status_code == 201, reply.text
    home = tmp_path_factory.mktemp("client")
    return {"AGENTFACTORY_URL": str(server), "AGENTFACTORY_TOKEN": reply.json()["token"],
            "AGENTFACTORY_HOME": str(home), "HOME": str(home)}


@pytest.fixture
def task(tmp_path: Path) -> Path:
    path = tmp_path / "task.md"
    path.write_text("Remote runs are queued. A worker process runs them.\n")
    return path


def test_run_remote_prints_the_result_and_progress(env: dict[str, str], task: Path) -> None:
    done = run_cli(env, "run", "documentaliste", "--input", str(task), "--remote").ok()
    assert json.loads(done.out)["word_count"] == 9
    assert "queued" in done.err and "running" in done.err  # plain progress lines in a pipe
    assert "Traceback" not in done.err


def test_run_remote_json_is_the_whole_record(env: dict[str, str], task: Path) -> None:
    record = run_cli(env, "run", "documentaliste", "--input", str(task), "--remote",
                     "--json").ok().json()
    assert (record["status"], record["agent_name"], record["version"]) == (
        "succeeded", "documentaliste", "1.0.0")
    shown = run_cli(env, "runs", "show", record["id"]).ok()
    assert f"run {record['id']}: succeeded" in shown.out
    assert "agent: documentaliste 1.0.0" in shown.out
    listed = run_cli(env, "runs", "list").ok()
    assert record["id"] in listed.out and "succeeded" in listed.out


def test_a_failed_remote_run_is_one_red_line(env: dict[str, str], tmp_path: Path) -> None:
    blocking = tmp_path / "block.json"
    blocking.write_text(json.dumps({"block": True}))
    failed = run_cli(env, "run", BLOCKER, "--input", str(blocking), "--remote",
                     "--timeout", "0.5")
    *progress, error = failed.err.strip().splitlines()
    assert failed.code == 1 and [line.split(": ")[-1] for line in progress] == [
        "queued", "running"]
    assert error.startswith("error: run ")
    assert "timed out: deadline: the run passed its deadline of 0.5 s" in error
    assert "Traceback" not in failed.err
    unknown = run_cli(env, "run", "documentalist", "--input", str(blocking), "--remote").failed()
    assert "did you mean 'documentaliste'" in unknown.err


def test_runs_cancel_stops_a_running_run(env: dict[str, str], server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {env['AGENTFACTORY_TOKEN']}"}
    body = {"agent": BLOCKER, "input": {"block": True}}
    run_id = httpx.post(f"{server}/api/v1/runs", json=body, headers=headers).json()["id"]
    cancelled = run_cli(env, "runs", "cancel", run_id).ok()
    assert cancelled.out.strip() == f"run {run_id}: cancelled"
    missing = run_cli(env, "runs", "show", "AAAAAAAAAAAAAAAA").failed()
    assert "run 'AAAAAAAAAAAAAAAA' not found" in missing.err

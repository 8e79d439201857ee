"""Fixtures of the run service's tests.

- `blocker_site`: a third-party plugin, installed the way pip installs one (`tests.plugin_dist`),
  that offers the agent `test-blocker`: `{"block": true}` blocks forever, `{"until": PATH}` blocks
  until that file exists, `{"echo": X}` answers `{"echo": X}` at once; `{"bad": "surrogate"}`
  and `{"deep": N}` answer what the service must refuse (a lone surrogate, N levels of
  nesting). The run workers are fresh interpreters started with the parent's `sys.path`, so
  they load it through their entry points like any installed plugin. The site is on `sys.path`
  only for the tests of this folder.
- `make_app(**run_settings)`: a started in-process app (FastAPI `TestClient`, real worker
  processes) with the runs settings given; `Caller`s register accounts on it.
- `wait_until(predicate)`: a bounded poll for a state a test cannot be told about otherwise
  (a worker that has started running a task); never a fixed sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.plugin_dist import write_plugin

BLOCKER = "test-blocker"
_BLOCKER_SOURCE = '''
import os
import threading
import time

TEMPLATE = {"name": "test-blocker", "version": "1.2.0", "description": "Blocks on request",
            "capabilities": ["test.block"], "tools": [], "implementation": "test-blocker"}


@hookimpl
def agentfactory_templates():
    return [TEMPLATE]


@hookimpl
def agentfactory_implementations():
    return ["test-blocker"]


@hookimpl
def agentfactory_process(agent, task):
    if agent.implementation != "test-blocker":
        return None
    if task.get("block"):
        threading.Event().wait()  # a task that never ends on its own
    if "until" in task:
        while not os.path.exists(task["until"]):
            time.sleep(0.01)  # the agent's own polling, inside its worker process
    if task.get("crash"):
        raise RuntimeError("the agent broke")
    if task.get("bad") == "surrogate":
        return {"echo": "\\ud800"}
    if "deep" in task:
        value = {}
        for _ in range(task["deep"]):
            value = {"v": value}
        return value
    return {"echo": task.get("echo"), "pid": os.getpid()}
'''


@pytest.fixture(scope="package")
def blocker_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    site = write_plugin(tmp_path_factory.mktemp("site"), "af_runs_test_blocker", _BLOCKER_SOURCE)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(site))
        yield site


@dataclass
class Caller:
    client: Any
    name: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def submit(
        self, agent: str, task: dict[str, Any] | None = None, *, wait: Any = None, **extra: Any
    ) -> Any:
        """POST /runs; with `wait`, the server holds the answer until the run ends (or not)."""
        body = {"agent": agent, "input": task or {}, **extra}
        params = None if wait is None else {"wait": wait}
        return self.client.post("/api/v1/runs", json=body, headers=self.auth, params=params)

    def run(self, agent: str, task: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """Submit and wait for the final state (the server holds the answer, at most 60 s)."""
        submitted = self.submit(agent, task, **extra)
        assert submitted.status_code == 202, submitted.text
        return self.wait(submitted.json()["id"])

    def get(self, run_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/api/v1/runs/{run_id}", headers=self.auth)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def wait(self, run_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/api/v1/runs/{run_id}", params={"wait": 60}, headers=self.auth)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert body["status"] not in ("queued", "running"), body
        return body

    def cancel(self, run_id: str) -> Any:
        return self.client.post(f"/api/v1/runs/{run_id}/cancel", headers=self.auth)


def register(client: Any, name: str) -> Caller:
    reply = client.post("/api/v1/publishers", json={"name": name, "namespace": name})
    assert reply.status_code == 201, reply.text
    return Caller(client, name, reply.json()["token"])


@pytest.fixture
def make_app(tmp_path: Path, blocker_site: Path) -> Iterator[Callable[..., Any]]:
    from fastapi.testclient import TestClient

    from marketplace.server.app import create_app
    from marketplace.server.settings import RateLimit, ServerSettings
    from runs.settings import RunSettings

    clients: list[Any] = []

    def make(**runs: Any) -> Any:
        values = {"workers": 1, "max_concurrent": 0, "max_per_hour": 0, "grace_s": 0.2, **runs}
        settings = ServerSettings(
            home=tmp_path / f"home{len(clients)}", bootstrap=False, vet_uploads=False,
            register_rate=RateLimit(0, 0.0), token_rate=RateLimit(0, 0.0),
            runs=RunSettings(**values),
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_app: Callable[..., Any]) -> Any:
    return make_app()


@pytest.fixture
def alice(api: Any) -> Caller:
    return register(api, "alice")


def engine_of(client: Any) -> Any:
    return client.app.state.market.runs.engine


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """Poll `predicate` until it is truthy (bounded); its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what or predicate}")
        time.sleep(0.01)

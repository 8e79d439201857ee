"""Shared fixtures of the marketplace tests.

Server-side (in-process, through FastAPI's `TestClient`):
- `clock`: a hand-driven clock (`clock.advance(s)`) injected into rate limits and caches;
- `make_app(**settings)`: a fresh app over a temp home; `api` is a started `TestClient` over the
  default one (no bootstrap, generous limits); `Actor`s register publishers and sign packages;
- `make_package(...)` builds a real, signed-able archive with `registry.archive.build_archive`.

End-to-end (a real server, for the client helper's tests too):
- `live_server` starts `agentfactory serve` in a subprocess on 127.0.0.1 and a free port with a
  temp `AGENTFACTORY_HOME`, waits for `/healthz` with a bounded poll (at most 60 s, never a fixed
  sleep), and yields its base URL as a `LiveServer` — a `str` like `"http://127.0.0.1:54321"`
  that also carries `.home` (the server's data directory) and `.port`. The server is stopped
  (SIGTERM, then SIGKILL after 10 s) when the test ends. The built-in agents are published
  under `builtin/` as on any first start.
- `live_server_factory(**env)` starts more servers with extra environment, e.g.
  `live_server_factory(AGENTFACTORY_MAX_UPLOAD_BYTES="2048")`; all are stopped at teardown.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.archive import build_archive
from registry.signing import SigningKey


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(tmp_path: Path, clock: FakeClock) -> Iterator[Callable[..., Any]]:
    from fastapi.testclient import TestClient

    from marketplace.server.app import create_app
    from marketplace.server.settings import RateLimit, ServerSettings

    clients: list[Any] = []

    def make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "home": tmp_path / f"home{len(clients)}",
            "bootstrap": False,
            "publish_rate": RateLimit(1000, 1000.0),
            "review_rate": RateLimit(1000, 1000.0),
            "token_rate": RateLimit(1000, 1000.0),
            "register_rate": RateLimit(1000, 1000.0),
            "clock": clock,
        }
        values.update(overrides)
        raise_errors = values.pop("raise_server_exceptions", True)
        client = TestClient(
            create_app(ServerSettings(**values)), raise_server_exceptions=raise_errors
        )
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_app: Callable[..., Any]) -> Any:
    return make_app()


def make_package(
    root: Path,
    name: str = "acme/summarizer",
    version: str = "1.0.0",
    *,
    summary: str = "Summarizes text",
    keywords: tuple[str, ...] = ("text",),
    padding: int = 0,
    process: str = "def process(task):\n    return {'echo': task.get('text', '')}\n",
) -> bytes:
    """A valid package archive (manifest, one template, process.py, README)."""
    namespace, short = name.split("/")
    folder = root / f"{namespace}-{short}-{version}-{padding}"
    (folder / "templates").mkdir(parents=True)
    manifest = {
        "name": name,
        "version": version,
        "summary": summary,
        "license": "MIT",
        "keywords": list(keywords),
        "templates": [f"templates/{short}.json"],
        "examples": [{"name": "echo", "input": {"text": "hi"}, "expected": {"echo": "hi"}}],
    }
    template = {
        "name": f"{namespace}/{short}",
        "version": version,
        "description": summary,
        "capabilities": ["text.echo"],
        "tools": [],
    }
    (folder / "agent.json").write_text(json.dumps(manifest))
    (folder / "templates" / f"{short}.json").write_text(json.dumps(template))
    body = process
    if padding:
        body += "# " + os.urandom(padding // 2).hex() + "\n"  # incompressible
    (folder / "process.py").write_text(body)
    (folder / "README.md").write_text(f"# {name}\n\nEchoes its input.\n")
    return build_archive(folder)


@dataclass
class Actor:
    """A registered publisher with a token and a registered signing key."""

    client: Any
    name: str
    token: str
    key: SigningKey = field(default_factory=SigningKey.generate)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def sign(self, archive: bytes, name: str, version: str) -> str:
        """The signature `agentfactory publish` would send (`tests.signing.sign_archive`)."""
        import base64

        from tests.signing import sign_archive

        return base64.b64encode(sign_archive(self.key, archive, name, version)).decode()

    def publish(self, archive: bytes, name: str, version: str, **overrides: Any) -> httpx.Response:
        data = {"signature": self.sign(archive, name, version), "key_id": self.key.key_id}
        data.update(overrides.pop("data", {}))
        files = overrides.pop("files", {"archive": ("pkg.zip", archive, "application/zip")})
        headers = overrides.pop("headers", self.auth)
        response: httpx.Response = self.client.post(
            "/api/v1/packages", data=data, files=files, headers=headers
        )
        return response


def register(client: Any, name: str, namespace: str | None = None) -> Actor:
    import base64

    response = client.post(
        "/api/v1/publishers", json={"name": name, "namespace": namespace or name}
    )
    assert response.status_code == 201, response.text
    actor = Actor(client, name, response.json()["token"])
    key = {"public_key": base64.b64encode(actor.key.public_bytes).decode()}
    added = client.post("/api/v1/keys", json=key, headers=actor.auth)
    assert added.status_code == 201, added.text
    return actor


@pytest.fixture
def acme(api: Any) -> Actor:
    return register(api, "acme")


@pytest.fixture
def acme_releases(api: Any, acme: Actor, tmp_path: Path) -> Actor:
    """acme, having published acme/summarizer 1.0.0 and 1.1.0."""
    for version in ("1.0.0", "1.1.0"):
        archive = make_package(tmp_path, version=version)
        assert acme.publish(archive, "acme/summarizer", version).status_code == 201
    return acme


# --------------------------------------------------------------------------------- live server


class LiveServer(str):
    """The base URL of a running server, with its data directory and port."""

    home: Path
    port: int

    def __new__(cls, url: str, home: Path, port: int) -> LiveServer:
        self = super().__new__(cls, url)
        self.home = home
        self.port = port
        return self


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    home: Path, env: dict[str, str] | None = None, timeout: float = 60.0
) -> tuple[LiveServer, subprocess.Popen[bytes]]:
    """Start `agentfactory serve` on a free port; return once /healthz answers 200."""
    port = _free_port()
    # Test clients all register from 127.0.0.1: the per-address sign-up limit is off unless a
    # test sets it (it is tested with an injected clock in test_api_accounts.py).
    child_env = {**os.environ, "AGENTFACTORY_HOME": str(home), "AGENTFACTORY_REGISTER_RATE": "0",
                 **(env or {})}
    log = open(home.parent / f"server-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import main; main()", "serve",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=child_env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as probe:
        while True:
            if proc.poll() is not None:
                log.close()
                output = (home.parent / f"server-{port}.log").read_text(errors="replace")
                raise RuntimeError(f"server exited with {proc.returncode}:\n{output[-2000:]}")
            try:
                if probe.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                stop_server(proc)
                raise RuntimeError(f"server on {url} not healthy after {timeout} s")
            # Not a sleep-and-hope: a bounded poll interval while the server boots.
            time.sleep(0.05)
    return LiveServer(url, home, port), proc


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def live_server_factory() -> Iterator[Callable[..., LiveServer]]:
    procs: list[subprocess.Popen[bytes]] = []
    tmp = tempfile.TemporaryDirectory(prefix="af-live-")

    def start(**env: str) -> LiveServer:
        home = Path(tmp.name) / f"home{len(procs)}"
        home.mkdir()
        server, proc = start_server(home, env)
        procs.append(proc)
        return server

    yield start
    for proc in procs:
        stop_server(proc)
    tmp.cleanup()


@pytest.fixture
def live_server(live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    return live_server_factory()

"""Scale-out for real: two `agentfactory serve` processes (A and B, each on its own port) and two
`agentfactory worker` processes (`AGENTFACTORY_RUN_ENGINE=procrastinate`) on one fresh
PostgreSQL database and one object store.

The object store is the local S3-compatible server of `scripts/services` when
`$AGENTFACTORY_TEST_S3_URL` names it (each API process then has a data directory of its own, as
on two machines); without it, both API processes share one data directory and its `blobs/`
folder (one machine). Both API processes start at once on an empty database: migrations and
the built-in agents happen exactly once.

What a user would notice is asserted right after the write that causes it, on the *other*
process, with no wait in between: a publish, yank or review acknowledged by A is what B
answers next. Budgets are one per account, sessions work on either process, and at the end the
store holds exactly what was acknowledged. Every process started here is stopped at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.marketplace.conftest import Actor, _free_port, make_package, stop_server
from tests.registry.databases import pg_server
from tests.web.conftest import csrf_of

AGENTFACTORY = Path(sys.executable).with_name("agentfactory")
PKG = "acme/summarizer"
DETAIL = f"/api/v1/packages/{PKG}"
REVIEW_BUDGET = 4  # review writes per account per hour, on whichever process


@dataclass
class Api:
    """One API process: its URL, its process, a client."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    client: httpx.Client

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)


@dataclass
class Deployment:
    a: Api
    b: Api
    workers: list[subprocess.Popen[bytes]]
    blob_digests: Callable[[], set[str]]
    root: Path


def _env(url: str, root: Path) -> tuple[dict[str, str], Callable[[str], Path], Any]:
    """The environment of every process, where each API process's home is, and the blob
    listing."""
    env = {
        **os.environ,
        "AGENTFACTORY_DATABASE_URL": url,
        "AGENTFACTORY_RUN_ENGINE": "procrastinate",
        "AGENTFACTORY_VET_UPLOADS": "0",
        "AGENTFACTORY_REGISTER_RATE": "0",
        "AGENTFACTORY_REVIEW_RATE": f"{REVIEW_BUDGET}/3600",
        "AGENTFACTORY_RUN_LEASE": "2",
    }
    s3_url = os.environ.get("AGENTFACTORY_TEST_S3_URL")
    if s3_url:
        from tests.registry.objectstore import CREDENTIALS, REGION, S3Server

        s3 = S3Server(s3_url)
        bucket = s3.new_bucket()
        env.update(CREDENTIALS)
        env.update({"AGENTFACTORY_BLOB_URL": f"s3://{bucket}/blobs",
                    "AGENTFACTORY_S3_ENDPOINT": s3_url, "AGENTFACTORY_S3_REGION": REGION})
        store = s3.store(bucket, "blobs")
        return env, lambda name: root / f"home-{name}", lambda: set(store.digests())
    from registry.blobs import LocalBlobStore

    shared = root / "home"
    return env, lambda name: shared, lambda: set(LocalBlobStore(shared / "blobs").digests())


def _start_api(name: str, env: dict[str, str], home: Path, root: Path) -> Api:
    port = _free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = open(root / f"api-{name}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [str(AGENTFACTORY), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        env={**env, "AGENTFACTORY_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    return Api(name, url, proc, httpx.Client(base_url=url, timeout=30.0))


def _wait_healthy(api: Api, root: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if api.proc.poll() is not None:
            log = (root / f"api-{api.name}.log").read_text(errors="replace")
            raise RuntimeError(f"API {api.name} exited with {api.proc.returncode}:\n{log[-3000:]}")
        try:
            if api.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"API {api.name} not healthy after {timeout} s")
        time.sleep(0.05)  # a bounded poll while the process boots


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    server = pg_server()
    url = server.create()  # empty: the API processes migrate it, together
    env, home_of, blob_digests = _env(url, tmp_path)
    apis: list[Api] = []
    workers: list[subprocess.Popen[bytes]] = []
    try:
        apis = [_start_api(name, env, home_of(name), tmp_path) for name in ("a", "b")]
        for api in apis:
            _wait_healthy(api, tmp_path)
        for i in (1, 2):
            with (tmp_path / f"worker{i}.log").open("wb") as log:
                workers.append(subprocess.Popen(
                    [str(AGENTFACTORY), "worker", "--concurrency", "1"],
                    env={**env, "AGENTFACTORY_HOME": str(tmp_path / f"worker{i}-home")},
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                ))  # fmt: skip
        yield Deployment(apis[0], apis[1], workers, blob_digests, tmp_path)
    finally:
        for api in apis:
            api.client.close()
            stop_server(api.proc)
        for worker in workers:
            stop_server(worker)
        server.drop(url)


def register(api: Api, name: str) -> Actor:
    import base64

    reply = api.client.post("/api/v1/publishers", json={"name": name, "namespace": name})
    assert reply.status_code == 201, reply.text
    actor = Actor(api.client, name, reply.json()["token"])
    key = {"public_key": base64.b64encode(actor.key.public_bytes).decode()}
    assert api.client.post("/api/v1/keys", json=key, headers=actor.auth).status_code == 201
    return actor


def publish(api: Api, actor: Actor, archive: bytes, version: str) -> httpx.Response:
    data = {"signature": actor.sign(archive, PKG, version), "key_id": actor.key.key_id}
    files = {"archive": ("pkg.zip", archive, "application/zip")}
    return api.client.post("/api/v1/packages", data=data, files=files, headers=actor.auth)


def versions(api: Api) -> list[dict[str, Any]]:
    reply = api.get(f"{DETAIL}/versions")
    assert reply.status_code == 200, reply.text
    body: list[dict[str, Any]] = reply.json()
    return body


def test_two_api_processes_and_two_workers_serve_one_store(
    deployment: Deployment, tmp_path: Path
) -> None:
    a, b = deployment.a, deployment.b
    # Started together on an empty database: one of them migrated it and published the
    # built-in agents, once.
    builtins = a.get("/api/v1/packages", params={"publisher": "builtin"}).json()
    assert builtins["total"] >= 1
    for item in builtins["items"]:
        assert b.get(f"/api/v1/packages/{item['name']}").json()["versions"] == ["1.0.0"]

    acme = register(a, "acme")
    published: list[str] = []
    for i in range(6):
        writer, reader = (a, b) if i % 2 == 0 else (b, a)
        version = f"1.{i}.0"
        archive = make_package(tmp_path / "pkgs", PKG, version, summary=f"Summary {i}")
        assert publish(writer, acme, archive, version).status_code == 201
        published.append(version)
        detail = reader.get(DETAIL).json()  # the other process, at once
        assert (detail["latest_version"], detail["summary"]) == (version, f"Summary {i}")
        assert detail["versions"] == published

    # A yank on B is what A answers next; an unyank on A is what B answers next.
    yank = b.client.post(f"{DETAIL}/versions/1.5.0/yank", json={"reason": "broken"},
                         headers=acme.auth)
    assert yank.status_code == 200, yank.text
    assert a.get(DETAIL).json()["latest_version"] == "1.4.0"
    assert [v["yanked"] for v in versions(a)] == [False] * 5 + [True]
    assert a.client.delete(f"{DETAIL}/versions/1.5.0/yank", headers=acme.auth).status_code == 200
    assert b.get(DETAIL).json()["latest_version"] == "1.5.0"

    # A verified review written through A is counted by B at once.
    bob = register(b, "bob")
    download = b.get(f"{DETAIL}/versions/1.5.0/download", headers=bob.auth)
    assert download.status_code == 200
    review = a.client.put(f"{DETAIL}/reviews", json={"stars": 4, "body": "fine"},
                          headers=bob.auth)
    assert review.status_code == 200, review.text
    assert b.get(DETAIL).json()["rating"]["count"] == 1
    assert b.get(f"{DETAIL}/rating").json()["count"] == 1

    # One review budget per account: half spent on A, the rest on B, then B refuses.
    carol = register(a, "carol")
    for api in (a, a, b, b):
        answer = api.client.put(f"{DETAIL}/reviews", json={"stars": 5}, headers=carol.auth)
        assert answer.status_code == 200, answer.text
    refused = b.client.put(f"{DETAIL}/reviews", json={"stars": 3}, headers=carol.auth)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1

    # Signed in on A, signed in on B: the session lives in the database.
    browser_a = httpx.Client(base_url=a.url, timeout=30.0)
    try:
        form = browser_a.get("/login").text
        signed = browser_a.post("/login", data={"csrf_token": csrf_of(form),
                                                "token": acme.token, "next": "/"})
        assert signed.status_code in (200, 303), signed.text
        cookies = dict(browser_a.cookies)
    finally:
        browser_a.close()
    with httpx.Client(base_url=b.url, cookies=cookies, timeout=30.0) as browser_b:
        page = browser_b.get("/")
    assert page.status_code == 200 and "Signed in as <a href=\"/publishers/acme\">" in page.text

    # Runs accepted by either process are executed by the workers and read from the other.
    runs = []
    for i, api in enumerate([a, b, a, b]):
        text = f"Run {i} goes through process {api.name}."
        answer = api.client.post("/api/v1/runs", json={"agent": "documentaliste",
                                                       "input": {"text": text}},
                                 headers=acme.auth)
        assert answer.status_code == 202, answer.text
        runs.append((answer.json()["id"], len(text.split())))
    for i, (run_id, words) in enumerate(runs):
        other = b if i % 2 == 0 else a
        done = other.get(f"/api/v1/runs/{run_id}", params={"wait": 60}, headers=acme.auth).json()
        assert done["status"] == "succeeded", done
        assert done["result"]["word_count"] == words

    # The store is exact: every release once, each with its blob, and no other blob.
    listed = versions(b)
    assert [v["version"] for v in listed] == published
    digests = {v["digest"] for v in listed}
    others = {r["digest"] for item in builtins["items"]
              for r in b.get(f"/api/v1/packages/{item['name']}/versions").json()}
    assert deployment.blob_digests() == digests | others


def test_a_killed_api_process_loses_no_acknowledged_write(
    deployment: Deployment, tmp_path: Path
) -> None:
    a, b = deployment.a, deployment.b
    acme = register(b, "acme")
    archives = {f"2.{i}.0": make_package(tmp_path / "pkgs", PKG, f"2.{i}.0") for i in range(10)}
    acknowledged: list[str] = []

    def send(version: str, first: Api) -> None:
        """Publish through `first`; on a lost answer, retry through B. A 409 on the retry
        means the first attempt had committed."""
        try:
            reply = publish(first, acme, archives[version], version)
            if reply.status_code < 500:
                assert reply.status_code == 201, reply.text
                acknowledged.append(version)
                return
        except httpx.TransportError:
            pass
        retry = publish(b, acme, archives[version], version)
        assert retry.status_code in (201, 409), retry.text
        acknowledged.append(version)

    order = list(archives)
    for version in order[:4]:
        send(version, a if order.index(version) % 2 == 0 else b)
    # Kill A while a publish is on its way to it (it may or may not commit), and go on.
    in_flight = threading.Thread(target=send, args=(order[4], a))
    in_flight.start()
    os.killpg(a.proc.pid, signal.SIGKILL)
    a.proc.wait()
    in_flight.join(timeout=60)
    assert not in_flight.is_alive()
    for version in order[5:]:
        send(version, a if order.index(version) % 2 == 0 else b)

    assert sorted(acknowledged) == sorted(order)
    listed = [v["version"] for v in versions(b)]
    assert sorted(listed) == sorted(order)  # every acknowledged publish, each exactly once
    assert b.get(DETAIL).json()["latest_version"] == "2.9.0"
    digests = {v["digest"] for v in versions(b)}
    # Each release has its blob; the killed publish may have left one blob and no release.
    assert digests <= deployment.blob_digests()

"""Fixtures of the web-page tests.

- `web_app` is the real marketplace app (`marketplace.server.app.create_app`) over a temp home,
  with the web pages mounted (by `create_app` itself once it does, else here); `client` is a started
  `TestClient` over it and `registry` the app's own registry, used to seed data directly.
- `seed` creates publishers, packages, releases and reviews through the registry library.
- `sign_in(client, token)` signs in through the real login form (CSRF token and all).
- `live_web` runs the same app under uvicorn on 127.0.0.1 (a free port, in a thread of this
  process so the test can seed through the registry) for the browser tests.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketplace.server.app import create_app
from marketplace.server.settings import RateLimit, ServerSettings
from registry.service import Registry
from tests.registry.factories import TestPublisher, make_archive, make_publisher, sign

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def build_web_app(home: Path) -> FastAPI:
    settings = ServerSettings(
        home=home, bootstrap=False, publish_rate=RateLimit(1000, 1000.0),
        review_rate=RateLimit(1000, 1000.0),
    )
    return create_app(settings)


@pytest.fixture
def web_app(tmp_path: Path) -> FastAPI:
    return build_web_app(tmp_path / "home")


@pytest.fixture
def client(web_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(web_app, headers={"accept": "text/html"}) as started:
        yield started


@pytest.fixture
def registry(client: TestClient) -> Registry:
    app: Any = client.app
    reg: Registry = app.state.market.registry
    return reg


@dataclass
class Seeder:
    registry: Registry

    def publisher(self, name: str, namespace: str | None = "") -> TestPublisher:
        return make_publisher(self.registry, name, namespace, key=namespace is not None)

    def package(
        self, pub: TestPublisher, name: str, version: str = "1.0.0", *, readme: str | None = None,
        **kwargs: Any,
    ) -> None:
        if readme is not None:
            kwargs["extra_files"] = {**kwargs.get("extra_files", {}), "README.md": readme.encode()}
        archive = make_archive(name=name, version=version, **kwargs)
        self.registry.publish(pub.principal, archive, sign(pub, archive, name, version),
                              pub.key.key_id)

    def reviewer(self, name: str) -> TestPublisher:
        return self.publisher(name, None)

    def download(self, name: str, who: TestPublisher) -> None:
        """`who` downloads the latest version of `name`: their review of it is verified."""
        version = self.registry.package(name).latest_version
        assert version is not None
        self.registry.download(name, version, client=f"publisher:{who.principal.publisher_id}")

    def review(self, name: str, reviewer: str, stars: int, title: str = "", body: str = "") -> int:
        who = self.reviewer(reviewer)
        self.download(name, who)
        return self.registry.rate(who.principal, name, stars, title=title, body=body).id


@pytest.fixture
def seed(registry: Registry) -> Seeder:
    return Seeder(registry)


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def sign_in(client: TestClient, token: str, next_path: str = "/") -> Any:
    page = client.get(f"/login?next={next_path}")
    assert page.status_code == 200
    return client.post(
        "/login", data={"csrf_token": csrf_of(page.text), "token": token, "next": next_path},
        follow_redirects=False,
    )


@dataclass
class LiveWeb:
    url: str
    registry: Registry
    seed: Seeder


@pytest.fixture
def live_web(tmp_path: Path) -> Iterator[LiveWeb]:
    import socket

    import uvicorn

    app = build_web_app(tmp_path / "live-home")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)  # bounded readiness poll while the server binds, not a timing assumption
    registry: Registry = app.state.market.registry
    try:
        yield LiveWeb(f"http://127.0.0.1:{port}", registry, Seeder(registry))
    finally:
        server.should_exit = True
        thread.join(timeout=15)

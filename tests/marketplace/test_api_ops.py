"""Health, metrics, OpenAPI, problem details for the unexpected, bootstrap, and the small
server-side pieces (token buckets, response cache) driven by hand. `/metrics` itself is in
`test_metrics.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from marketplace.server.api.cache import ResponseCache
from marketplace.server.ratelimit import RateLimited, TokenBucketLimiter
from marketplace.server.settings import RateLimit, ServerSettings
from tests.marketplace.conftest import Actor, FakeClock, make_package
from tests.marketplace.test_metrics import scrape, value


def test_healthz_and_openapi(api: Any) -> None:
    assert api.get("/healthz").json()["status"] == "ok"
    spec = api.get("/api/v1/openapi.json").json()
    for path in (
        "/api/v1/packages",
        "/api/v1/packages/{namespace}/{name}",
        "/api/v1/packages/{namespace}/{name}/versions/{version}/download",
        "/api/v1/packages/{namespace}/{name}/reviews",
        "/api/v1/publishers",
        "/api/v1/keys",
    ):
        assert path in spec["paths"]
    assert (
        "multipart/form-data" in spec["paths"]["/api/v1/packages"]["post"]["requestBody"]["content"]
    )


def test_metrics_count_sandbox_runs_and_failures_by_kind(
    api: Any, acme: Actor, tmp_path: Path
) -> None:
    def sandbox_figures() -> tuple[int, int]:
        figures = api.get("/api/v1/metrics/agent_factory").json()
        return figures["sandbox_runs"], figures["sandbox_failures"].get("agent_error", 0)

    runs, errors = sandbox_figures()
    good = make_package(tmp_path, "acme/summarizer")
    assert acme.publish(good, "acme/summarizer", "1.0.0").status_code == 201
    crashing = "def process(task):\n    raise KeyError('text')\n"
    bad = make_package(tmp_path, "acme/crasher", process=crashing)
    assert acme.publish(bad, "acme/crasher", "1.0.0").json()["code"] == "VettingFailed"
    assert sandbox_figures() == (runs + 2, errors + 1)
    failures = value(scrape(api), "agentfactory_sandbox_failures_total", kind="agent_error")
    assert failures == errors + 1


def test_unknown_route_and_unexpected_error_are_problems(make_app: Any) -> None:
    client = make_app(raise_server_exceptions=False)

    def boom() -> None:
        raise RuntimeError("secret internal detail")

    client.app.add_api_route("/api/v1/boom", boom)
    missing = client.get("/api/v1/nowhere")
    assert missing.status_code == 404 and missing.json()["code"] == "NotFound"
    crashed = client.get("/api/v1/boom")
    assert crashed.status_code == 500
    assert crashed.headers["content-type"] == "application/problem+json"
    assert "secret" not in crashed.text


def test_bootstrap_publishes_builtins_once(make_app: Any, tmp_path: Path) -> None:
    home = tmp_path / "shared-home"
    first = make_app(home=home, bootstrap=True)
    names = {p["name"] for p in first.get("/api/v1/packages").json()["items"]}
    assert "builtin/documentaliste" in names
    versions = first.get("/api/v1/packages/builtin/documentaliste/versions").json()
    first.__exit__(None, None, None)
    second = make_app(home=home, bootstrap=True)  # a restart on the same home
    assert second.get("/api/v1/packages/builtin/documentaliste/versions").json() == versions
    assert (home / "server" / "builtin.key").stat().st_mode & 0o777 == 0o600
    assert (home / "server" / "builtin.token").stat().st_mode & 0o777 == 0o600


def test_a_restart_removes_blobs_left_by_an_interrupted_publish(
    make_app: Any, acme: Actor, tmp_path: Path
) -> None:
    from registry.blobs import LocalBlobStore

    home = tmp_path / "home0"  # the `api` fixture's home, shared by `acme`
    archive = make_package(tmp_path, "acme/summarizer", "1.0.0")
    assert acme.publish(archive, "acme/summarizer", "1.0.0").status_code == 201
    store = LocalBlobStore(home / "blobs")
    orphan, _ = store.put(b"bytes of a publish killed before its row committed")
    acme.client.__exit__(None, None, None)
    restarted = make_app(home=home)
    assert not store.exists(orphan)
    download = restarted.get("/api/v1/packages/acme/summarizer/versions/1.0.0/download")
    assert download.content == archive


def test_token_bucket_refills_with_the_injected_clock() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(RateLimit(2, 0.5), "publish", clock)
    limiter.acquire("t1")
    limiter.acquire("t1")
    with pytest.raises(RateLimited) as refused:
        limiter.acquire("t1")
    assert refused.value.retry_after == 2
    limiter.acquire("t2")  # another token is not affected
    clock.advance(2)
    limiter.acquire("t1")
    assert limiter.remaining("t1") == 0
    TokenBucketLimiter(RateLimit.parse("0"), "publish", clock).acquire("t1")  # disabled


def test_rate_limit_parse() -> None:
    assert RateLimit.parse("30/60") == RateLimit(30, 0.5)
    with pytest.raises(ValueError, match="COUNT/SECONDS"):
        RateLimit.parse("lots")


def test_cache_never_stores_a_value_computed_before_a_write() -> None:
    clock = FakeClock()
    cache = ResponseCache(10, ttl=5, clock=clock)
    generation = cache.generation("acme/a")
    cache.invalidate("acme/a")  # a write lands while the reader is computing
    cache.put("detail", "acme/a", b"old", generation)
    assert cache.get("detail", "acme/a") is None
    cache.put("detail", "acme/a", b"new", cache.generation("acme/a"))
    assert cache.get("detail", "acme/a") == b"new"
    clock.advance(5)
    assert cache.get("detail", "acme/a") is None  # expired


def test_settings_from_env(tmp_path: Path) -> None:
    env = {
        "AGENTFACTORY_HOME": str(tmp_path),
        "AGENTFACTORY_PUBLISH_RATE": "5/10",
        "AGENTFACTORY_MAX_UPLOAD_BYTES": "1234",
    }
    settings = ServerSettings.from_env(env, port=9000)
    assert settings.home == tmp_path and settings.port == 9000
    assert settings.publish_rate == RateLimit(5, 0.5) and settings.max_upload_bytes == 1234
    with pytest.raises(ValueError, match="sandbox policy"):
        ServerSettings(home=tmp_path, sandbox_policy="sometimes")  # type: ignore[arg-type]


def test_a_bad_factory_setting_stops_the_app_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.errors import SettingsError
    from marketplace.server.app import create_app

    config = tmp_path / "config.toml"
    config.write_text("[factory]\nworker_threads = 0\n")
    monkeypatch.setenv("AGENTFACTORY_CONFIG", str(config))
    message = f"invalid setting factory.worker_threads=0 in {config}: must be at least 1"
    with pytest.raises(SettingsError) as raised:
        create_app(ServerSettings(home=tmp_path / "home"))
    assert str(raised.value) == message
    assert not (tmp_path / "home").exists()  # nothing was created


@pytest.mark.e2e
def test_live_server_serves_the_builtin_agents(live_server: Any) -> None:
    assert live_server.startswith("http://127.0.0.1:")
    with httpx.Client(base_url=live_server) as client:
        assert client.get("/healthz").status_code == 200
        detail = client.get("/api/v1/packages/builtin/hardware")
        assert detail.status_code == 200 and detail.json()["publisher"] == "builtin"
    assert (live_server.home / "registry.db").is_file()

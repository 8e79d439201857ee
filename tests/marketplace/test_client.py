"""The HTTP client and its configuration, against `httpx.MockTransport` handlers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from marketplace.client.config import load_config, update_config_file
from marketplace.client.errors import (
    ApiError,
    ConfigError,
    ConnectionFailed,
    DownloadTooLarge,
    NotLoggedIn,
)
from marketplace.client.http import AsyncMarketplaceClient, MarketplaceClient


def client_with(handler: object, token: str | None = None) -> MarketplaceClient:
    return MarketplaceClient("http://registry.test", token,
                             transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def problem(status: int, detail: str, code: str) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "application/problem+json"},
                          json={"type": "about:blank", "title": "t", "status": status,
                                "detail": detail, "code": code})


def test_problem_details_become_api_errors_with_the_servers_detail() -> None:
    client = client_with(lambda request: problem(409, "acme/x 1.0 already exists",
                                                 "DuplicateRelease"))
    with pytest.raises(ApiError) as info:
        client.package("acme/x")
    assert (info.value.status, info.value.code) == (409, "DuplicateRelease")
    assert str(info.value) == "acme/x 1.0 already exists (HTTP 409, DuplicateRelease)"


def test_a_validation_problem_is_told_in_the_users_terms() -> None:
    body = {"type": "about:blank", "title": "Validation failed", "status": 422,
            "detail": "body.stars: Input should be less than or equal to 5",
            "code": "RequestValidationError",
            "errors": [{"path": "body.stars", "message": "must be 1 to 5"},
                       {"path": "query.page", "message": "must be at least 1"}]}
    client = client_with(lambda request: httpx.Response(422, json=body))
    with pytest.raises(ApiError) as info:
        client.search("x")
    assert str(info.value) == "stars: must be 1 to 5; page: must be at least 1 (HTTP 422)"
    assert info.value.code == "RequestValidationError"  # still there to match on


def test_a_non_json_error_still_gives_a_clear_message() -> None:
    client = client_with(lambda request: httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(ApiError, match=r"Bad Gateway \(HTTP 502\)"):
        client.search("x")


def test_token_goes_in_the_authorization_header_only() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 1, "stars": 5, "reviewer": "bob"})

    client_with(handler, token="s3cret").rate("acme/x", 5, body="great")
    assert seen[0].headers["authorization"] == "Bearer s3cret"
    assert "s3cret" not in str(seen[0].url)
    assert json.loads(seen[0].content) == {"stars": 5, "title": "", "body": "great"}
    assert seen[0].method == "PUT" and seen[0].url.path == "/api/v1/packages/acme/x/reviews"


def test_writes_without_a_token_are_refused_before_any_request() -> None:
    client = client_with(lambda request: pytest.fail("no request expected"))
    with pytest.raises(NotLoggedIn, match="publishing needs an API token"):
        client.publish(b"PK", b"sig", "k")


def test_unreachable_registry_is_one_clear_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ConnectionFailed, match=r"cannot reach the marketplace at "
                                               r"http://registry\.test: connection refused; "
                                               r"start one with `agentfactory serve`"):
        client_with(refuse).package("acme/x")


def test_download_hashes_while_streaming_and_reads_the_headers() -> None:
    body = b"x" * 5000
    progress: list[tuple[int, int | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["install"] == "1"
        return httpx.Response(200, content=body, headers={
            "x-agentfactory-digest": "abc", "x-agentfactory-signature": "c2ln",
            "x-agentfactory-key-id": "k1"})

    got = client_with(handler).download("acme/x", "1.0", install=True,
                                        progress=lambda n, total: progress.append((n, total)))
    import hashlib
    assert got.data == body and got.sha256 == hashlib.sha256(body).hexdigest()
    assert (got.claimed_digest, got.signature, got.key_id) == ("abc", "c2ln", "k1")
    assert progress[-1] == (5000, 5000)


def test_download_cap_holds_even_when_content_length_lies() -> None:
    def stream() -> httpx.SyncByteStream:
        class Chunks(httpx.SyncByteStream):
            def __iter__(self):  # type: ignore[no-untyped-def]
                for _ in range(100):
                    yield b"y" * 1000
        return Chunks()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=stream(), headers={"content-length": "10"})

    with pytest.raises(DownloadTooLarge) as info:
        client_with(handler).download("acme/x", "1.0", max_bytes=20_000)
    assert info.value.limit == 20_000 and info.value.size > 20_000


def test_download_cap_refuses_a_declared_oversize_at_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"z" * 3000)

    with pytest.raises(DownloadTooLarge, match=r"3000 > 1000 bytes"):
        client_with(handler).download("acme/x", "1.0", max_bytes=1000)


def test_async_client_reads_details_and_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/missing"):
            return problem(404, "package 'acme/missing' not found", "NotFound")
        return httpx.Response(200, json={"name": "acme/x", "summary": "s", "publisher": "acme"})

    async def go() -> None:
        async with AsyncMarketplaceClient("http://r", transport=httpx.MockTransport(handler)) as c:
            detail = await c.package("acme/x")
            assert detail.publisher_name == "acme"
            with pytest.raises(ApiError, match="not found"):
                await c.package("acme/missing")

    asyncio.run(go())


def test_config_precedence_flags_then_env_then_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFACTORY_URL", raising=False)
    monkeypatch.delenv("AGENTFACTORY_TOKEN", raising=False)
    assert load_config(home=tmp_path).url == "http://127.0.0.1:8000"
    path = update_config_file(tmp_path, url="http://file:1", token="file-token")
    assert path.stat().st_mode & 0o777 == 0o600
    assert (load_config(home=tmp_path).url, load_config(home=tmp_path).token) == (
        "http://file:1", "file-token")
    monkeypatch.setenv("AGENTFACTORY_URL", "http://env:2/")
    monkeypatch.setenv("AGENTFACTORY_TOKEN", "env-token")
    assert (load_config(home=tmp_path).url, load_config(home=tmp_path).token) == (
        "http://env:2", "env-token")
    flags = load_config("http://flag:3", "flag-token", home=tmp_path)
    assert (flags.url, flags.token) == ("http://flag:3", "flag-token")


def test_a_broken_config_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"config.json: not valid JSON"):
        load_config(home=tmp_path)

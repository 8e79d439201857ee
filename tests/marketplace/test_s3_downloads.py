"""The marketplace with its blobs in S3-compatible object storage, through a real server.

Each server is `agentfactory serve` in a subprocess configured by the environment only
(`AGENTFACTORY_BLOB_URL=s3://...`, `AGENTFACTORY_S3_ENDPOINT`, the standard AWS variables), over
the local moto server (`tests.registry.objectstore`). With `AGENTFACTORY_BLOB_REDIRECT=1` the
download answers 307 to a pre-signed URL and the client follows it; without, the server reads
the object (re-hashing it) and answers the bytes. Either way a damaged object never installs.
Then the client's rules for redirects (a hostile registry, on an `httpx.MockTransport`) and a
server whose bucket is missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketplace.client.errors import ApiError, DigestMismatch, InsecureUrl
from marketplace.client.http import AsyncMarketplaceClient, MarketplaceClient
from marketplace.client.installer import Installer, install_dir
from marketplace.client.lockfile import read_lock
from marketplace.client.records import Download
from tests.marketplace.conftest import (
    Actor,
    LiveServer,
    _free_port,
    make_package,
    register,
    start_server,
    stop_server,
)
from tests.marketplace.test_install import native_vetter
from tests.registry.objectstore import CREDENTIALS, REGION, S3Server, s3_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    yield from s3_server()


def _serve(s3: S3Server, **env: str) -> Iterator[tuple[LiveServer, str]]:
    bucket = s3.new_bucket()
    with tempfile.TemporaryDirectory(prefix="af-s3-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        server, proc = start_server(home, {
            **s3.env(bucket), "AGENTFACTORY_BOOTSTRAP": "0", "AGENTFACTORY_VET_UPLOADS": "0",
            **env,
        })
        try:
            yield server, bucket
        finally:
            stop_server(proc)


@pytest.fixture(scope="module")
def direct(s3: S3Server) -> Iterator[tuple[LiveServer, str]]:
    """A server answering downloads with the bytes it read from the bucket."""
    yield from _serve(s3)


@pytest.fixture(scope="module")
def redirecting(s3: S3Server) -> Iterator[tuple[LiveServer, str]]:
    """A server answering downloads with 307 to a pre-signed URL."""
    yield from _serve(s3, AGENTFACTORY_BLOB_REDIRECT="1")


def _publish(server: str, tmp_path: Path, publisher: str, name: str) -> tuple[bytes, str]:
    """Register `publisher`, publish `name` 1.0.0 through the API; the archive and its digest."""
    archive = make_package(tmp_path, name)
    with httpx.Client(base_url=server, timeout=30) as http:
        actor: Actor = register(http, publisher)
        answer = actor.publish(archive, name, "1.0.0")
        assert answer.status_code == 201, answer.text
    digest = hashlib.sha256(archive).hexdigest()
    assert answer.json()["digest"] == digest
    return archive, digest


def _download_path(name: str) -> str:
    return f"/api/v1/packages/{name}/versions/1.0.0/download"


def _keys(s3: S3Server, bucket: str) -> set[str]:
    listed = s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item.get("Key", "") for item in listed}


def _corrupt(s3: S3Server, bucket: str, digest: str) -> None:
    s3.client().put_object(Bucket=bucket, Key=f"blobs/{digest}", Body=b"PK\x03\x04 tampered")


# ---------------------------------------------------------------------------- no redirect


def test_publish_stores_the_archive_in_the_bucket_and_download_serves_it(
    direct: tuple[LiveServer, str], s3: S3Server, tmp_path: Path
) -> None:
    server, bucket = direct
    archive, digest = _publish(server, tmp_path, "alice", "alice/summarizer")
    assert f"blobs/{digest}" in _keys(s3, bucket)
    assert not (server.home / "blobs").exists() or not any((server.home / "blobs").rglob("*"))

    with MarketplaceClient(server) as client:
        download = client.download("alice/summarizer", "1.0.0")
    assert (download.data, download.sha256, download.claimed_digest) == (archive, digest, digest)


def test_a_damaged_object_is_refused_by_the_server(
    direct: tuple[LiveServer, str], s3: S3Server, tmp_path: Path
) -> None:
    server, bucket = direct
    _, digest = _publish(server, tmp_path, "bob", "bob/summarizer")
    _corrupt(s3, bucket, digest)

    answer = httpx.get(server + _download_path("bob/summarizer"))
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == f"stored blob {digest} is corrupt"
    with MarketplaceClient(server) as client, pytest.raises(ApiError, match="is corrupt"):
        client.download("bob/summarizer", "1.0.0")


# ---------------------------------------------------------------------------- redirects


def test_a_download_redirects_to_a_presigned_url_and_is_still_counted(
    redirecting: tuple[LiveServer, str], s3: S3Server, tmp_path: Path
) -> None:
    server, bucket = redirecting
    archive, digest = _publish(server, tmp_path, "carol", "carol/summarizer")

    answer = httpx.get(server + _download_path("carol/summarizer"))  # httpx does not follow
    assert answer.status_code == 307
    location = answer.headers["location"]
    assert location.startswith(f"{s3.endpoint}/{bucket}/blobs/{digest}?")
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=300" in location
    assert answer.headers["x-agentfactory-digest"] == digest
    assert answer.headers["cache-control"] == "no-store"

    with MarketplaceClient(server) as client:
        download = client.download("carol/summarizer", "1.0.0")
        # Counted, though the bytes never passed through the server.
        assert client.package("carol/summarizer").downloads >= 1
    assert (download.data, download.sha256, download.claimed_digest) == (archive, digest, digest)
    assert download.signature is not None and download.key_id is not None


def test_the_async_client_follows_the_redirect_too(
    redirecting: tuple[LiveServer, str], tmp_path: Path
) -> None:
    server, _ = redirecting
    archive, digest = _publish(server, tmp_path, "dave", "dave/summarizer")

    async def fetch() -> Download:
        async with AsyncMarketplaceClient(server) as client:
            return await client.download("dave/summarizer", "1.0.0")

    download = asyncio.run(fetch())
    assert (download.data, download.sha256, download.claimed_digest) == (archive, digest, digest)


def test_the_installer_installs_from_a_redirected_download(
    redirecting: tuple[LiveServer, str], tmp_path: Path
) -> None:
    server, _ = redirecting
    _, digest = _publish(server, tmp_path, "erin", "erin/summarizer")
    home = tmp_path / "user"
    with MarketplaceClient(server) as client:
        result = Installer(client, home, vetter=native_vetter).install("erin/summarizer")
    [entry] = result.installed
    assert (entry.version, entry.digest) == ("1.0.0", digest)
    assert (install_dir(home, "erin/summarizer") / "process.py").is_file()
    assert read_lock(home).agents["erin/summarizer"].digest == digest


def test_a_damaged_object_behind_a_redirect_never_installs(
    redirecting: tuple[LiveServer, str], s3: S3Server, tmp_path: Path
) -> None:
    server, bucket = redirecting
    _, digest = _publish(server, tmp_path, "frank", "frank/summarizer")
    _corrupt(s3, bucket, digest)
    home = tmp_path / "user"
    with MarketplaceClient(server) as client, pytest.raises(DigestMismatch):
        Installer(client, home, vetter=native_vetter).install("frank/summarizer")
    assert not install_dir(home, "frank/summarizer").exists()


# ---------------------------------------------------------------------------- hostile registry

ARCHIVE = b"PK\x03\x04 bytes from elsewhere"
DOWNLOAD = _download_path("acme/tool")


def _registry(location: str, seen: list[str]) -> httpx.MockTransport:
    """A registry that sends every download to `location`, which serves `ARCHIVE`."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == DOWNLOAD:
            return httpx.Response(307, headers={"Location": location,
                                                "X-Agentfactory-Digest": "d" * 64})
        return httpx.Response(200, content=ARCHIVE)

    return httpx.MockTransport(answer)


def test_a_redirect_to_plain_http_elsewhere_is_refused_without_its_signature() -> None:
    seen: list[str] = []
    target = "http://blobs.example.net/b/k?X-Amz-Signature=secret-part"
    client = MarketplaceClient("https://registry.example.org", token="tok",
                               transport=_registry(target, seen), allow_http=False)
    with client, pytest.raises(InsecureUrl) as refused:
        client.download("acme/tool", "1.0.0")
    assert "http://blobs.example.net/b/k" in str(refused.value)
    assert "secret-part" not in str(refused.value)
    assert seen == [f"https://registry.example.org{DOWNLOAD}"]  # nothing went to the target


@pytest.mark.parametrize("target", [
    "https://blobs.example.net/b/k?X-Amz-Signature=s",
    "http://127.0.0.1:9/b/k",  # this machine: allowed like the registry's own URL
])
def test_a_redirect_to_https_or_this_machine_is_followed_without_the_token(target: str) -> None:
    seen: list[str] = []
    requests: list[httpx.Request] = []
    inner = _registry(target, seen)

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return inner.handle_request(request)

    client = MarketplaceClient("https://registry.example.org", token="tok",
                               transport=httpx.MockTransport(record), allow_http=False)
    with client:
        download = client.download("acme/tool", "1.0.0")
    assert download.data == ARCHIVE and download.claimed_digest == "d" * 64
    assert seen[1] == target
    assert "authorization" not in requests[1].headers  # the token stays with the registry


def test_a_redirect_loop_ends_with_one_clear_error() -> None:
    seen: list[str] = []
    loop = f"https://registry.example.org{DOWNLOAD}"
    client = MarketplaceClient("https://registry.example.org",
                               transport=_registry(loop, seen))
    with client, pytest.raises(ApiError, match="redirected more than 3 times"):
        client.download("acme/tool", "1.0.0")
    assert len(seen) == 4


# ---------------------------------------------------------------------------- start-up


def test_a_server_whose_bucket_is_missing_stops_with_one_line(
    s3: S3Server, tmp_path: Path
) -> None:
    env = {**os.environ, **s3.env("no-such-bucket-at-all"), "AGENTFACTORY_HOME": str(tmp_path),
           "AGENTFACTORY_VET_UPLOADS": "0"}
    done = subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", "serve", "--port",
         str(_free_port())],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0
    assert "blob store s3://no-such-bucket-at-all/blobs is unavailable: the bucket " \
           "'no-such-bucket-at-all' does not exist" in done.stderr
    assert "Traceback" not in done.stderr and CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in (
        done.stderr + done.stdout
    )


def test_a_bucket_gone_while_serving_answers_503_and_changes_nothing(
    make_app: Callable[..., Any], s3: S3Server, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3.new_bucket()
    for name, value in s3.env(bucket).items():
        monkeypatch.setenv(name, value)
    api = make_app(blob_url=f"s3://{bucket}/blobs", s3_endpoint=s3.endpoint,
                   s3_region=REGION)
    acme = register(api, "acme")
    archive = make_package(tmp_path, "acme/summarizer")
    assert acme.publish(archive, "acme/summarizer", "1.0.0").status_code == 201
    client = s3.client()
    for key in _keys(s3, bucket):
        client.delete_object(Bucket=bucket, Key=key)
    client.delete_bucket(Bucket=bucket)

    answer = api.get(_download_path("acme/summarizer"))
    assert answer.status_code == 503
    assert answer.json()["detail"] == (
        f"blob store s3://{bucket}/blobs is unavailable: the bucket '{bucket}' does not exist"
    )
    second = make_package(tmp_path, "acme/summarizer", "1.1.0")
    assert acme.publish(second, "acme/summarizer", "1.1.0").status_code == 503
    versions = api.get("/api/v1/packages/acme/summarizer/versions").json()
    assert [v["version"] for v in versions] == ["1.0.0"]

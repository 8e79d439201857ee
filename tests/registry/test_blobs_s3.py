"""The `BlobStore` contract, on a directory, in memory and in S3-compatible object storage.

Every contract test runs against each store (`[local]`, `[memory]`, `[s3]`; the S3 one on the
local moto server of `tests.registry.objectstore`): content addressing, idempotent puts, the
digest check on read, refusal of any key that is not a digest, the orphan cleanup and its grace
period. Then what only S3 has: its configuration, a missing bucket, other objects under the
prefix, pre-signed URLs, and a registry keeping its blobs there.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from threading import Barrier

import httpx
import pytest

from core.errors import SettingsError
from marketplace.server.settings import ServerSettings
from registry import Registry, RegistryConfig
from registry.blobs import (
    BlobStore,
    LocalBlobStore,
    MemoryBlobStore,
    cleanup_orphans,
    parse_blob_url,
)
from registry.blobs_s3 import S3BlobStore
from registry.db import make_engine
from registry.errors import ArchiveError, BlobStoreUnavailable, NotFound
from tests.registry.factories import make_archive, make_publisher, publish
from tests.registry.objectstore import CREDENTIALS, REGION, S3Server, s3_server

HOUR = 3600.0


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    yield from s3_server()


@dataclass
class Subject:
    """A store under test and the back door the tests use to damage it."""

    store: BlobStore
    corrupt: Callable[[str, bytes], None]  # replace a blob's bytes behind the store's back
    raw_keys: Callable[[], set[str]]  # everything in the underlying storage


def _local(tmp_path: Path) -> Subject:
    root = tmp_path / "blobs"
    store = LocalBlobStore(root, fsync=False)

    def corrupt(digest: str, data: bytes) -> None:
        (root / digest[:2] / digest[2:4] / digest).write_bytes(data)

    def raw_keys() -> set[str]:
        return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}

    return Subject(store, corrupt, raw_keys)


def _memory() -> Subject:
    store = MemoryBlobStore()

    def corrupt(digest: str, data: bytes) -> None:
        store.blobs[digest] = data

    return Subject(store, corrupt, lambda: set(store.blobs))


def _s3(s3: S3Server) -> Subject:
    store = s3.store()
    client = s3.client()

    def corrupt(digest: str, data: bytes) -> None:
        client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/{digest}", Body=data)

    def raw_keys() -> set[str]:
        listed = client.list_objects_v2(Bucket=store.bucket)
        return {item.get("Key", "") for item in listed.get("Contents", [])}

    return Subject(store, corrupt, raw_keys)


@pytest.fixture(params=["local", "memory", "s3"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Subject:
    if request.param == "local":
        return _local(tmp_path)
    if request.param == "memory":
        return _memory()
    return _s3(request.getfixturevalue("s3"))


# --------------------------------------------------------------------------------- contract


def test_put_is_content_addressed_idempotent_and_read_back(subject: Subject) -> None:
    store = subject.store
    data = b"PK\x03\x04 an archive"
    digest, created = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest() and created
    assert store.put(data) == (digest, False)
    assert store.get(digest) == data and store.exists(digest)
    assert list(store.digests()) == [digest]
    assert [blob.digest for blob in store.listing()] == [digest]
    store.delete(digest)
    store.delete(digest)  # deleting what is gone is not an error
    assert not store.exists(digest)
    with pytest.raises(NotFound):
        store.get(digest)


def test_concurrent_puts_of_the_same_bytes_both_succeed(subject: Subject) -> None:
    data = os.urandom(4096)
    barrier = Barrier(4)

    def put() -> str:
        barrier.wait()
        return subject.store.put(data)[0]

    with ThreadPoolExecutor(4) as pool:
        digests = set(pool.map(lambda _: put(), range(4)))
    assert digests == {hashlib.sha256(data).hexdigest()}
    assert subject.store.get(digests.pop()) == data


def test_a_corrupted_blob_is_refused_never_served(subject: Subject) -> None:
    digest, _ = subject.store.put(b"the real bytes")
    subject.corrupt(digest, b"other bytes")
    with pytest.raises(ArchiveError, match=f"stored blob {digest} is corrupt"):
        subject.store.get(digest)


HOSTILE_KEYS = [
    "",
    "../../etc/passwd",
    "..",
    "/" + "a" * 63,
    "A" * 64,  # upper case is not how digests are written
    "g" * 64,
    "a" * 63,
    "a" * 65,
    "a" * 64 + "\n",
    "a" * 62 + "/x",
    "ab/cd/" + "a" * 58,
    "%2e%2e%2f" + "a" * 55,
    "a" * 32 + "\x00" + "a" * 31,
]


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=range(len(HOSTILE_KEYS)))
def test_only_hex_digests_are_keys(subject: Subject, key: str) -> None:
    digest, _ = subject.store.put(b"kept")
    before = subject.raw_keys()
    with pytest.raises(NotFound):
        subject.store.get(key)
    with pytest.raises(NotFound):
        subject.store.delete(key)
    assert subject.store.exists(key) is False
    assert subject.raw_keys() == before and subject.store.get(digest) == b"kept"


def test_cleanup_deletes_only_unreferenced_blobs_past_the_grace_period(subject: Subject) -> None:
    kept, _ = subject.store.put(b"a release's archive")
    orphan, _ = subject.store.put(b"left by a crashed publish")
    now = time.time()
    # Within the grace period an unreferenced blob may be an in-flight publish: kept.
    assert cleanup_orphans(subject.store, lambda: [kept], grace_s=HOUR, now=now) == []
    assert subject.store.exists(orphan)
    # Once older than the grace period it is an orphan.
    assert cleanup_orphans(subject.store, lambda: [kept], grace_s=HOUR, now=now + 2 * HOUR) == [
        orphan
    ]
    assert subject.store.exists(kept) and not subject.store.exists(orphan)


def test_cleanup_lists_before_it_reads_the_references(subject: Subject) -> None:
    """A publish that commits while the cleanup runs is seen: the references are read after
    the listing, so its blob is in them."""
    in_flight, _ = subject.store.put(b"a publish committing right now")
    committed: list[str] = []

    def references() -> list[str]:
        committed.append(in_flight)  # its release row commits before this read
        return committed

    assert cleanup_orphans(subject.store, references) == []
    assert subject.store.exists(in_flight)


def test_putting_stored_bytes_again_resets_their_age(tmp_path: Path) -> None:
    """A publish reusing an old orphan's bytes is protected by the grace period too. (S3 sets
    `LastModified` itself and it cannot be set back, so this runs on the directory store; the
    S3 store writes the object again, which is what sets it.)"""
    store = LocalBlobStore(tmp_path, fsync=False)
    digest, _ = store.put(b"bytes of an old orphan")
    path = tmp_path / digest[:2] / digest[2:4] / digest
    os.utime(path, (time.time() - 2 * HOUR, time.time() - 2 * HOUR))
    assert store.put(b"bytes of an old orphan") == (digest, False)
    assert cleanup_orphans(store, list, grace_s=HOUR) == []


# --------------------------------------------------------------------------------- S3 only


def test_a_missing_bucket_is_one_clear_error(s3: S3Server, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BlobStoreUnavailable) as refused:
        S3BlobStore.open("s3://no-such-bucket-here/blobs", endpoint=s3.endpoint, region=REGION)
    assert str(refused.value) == (
        "blob store s3://no-such-bucket-here/blobs is unavailable: "
        "the bucket 'no-such-bucket-here' does not exist"
    )
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in str(refused.value)


def test_an_unreachable_endpoint_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(BlobStoreUnavailable, match="reaching the bucket failed"):
        S3BlobStore.open("s3://some-bucket", endpoint=endpoint, region=REGION)


def test_other_objects_under_the_prefix_are_never_listed_or_collected(s3: S3Server) -> None:
    store = s3.store()
    client = s3.client()
    foreign = [f"{store.prefix}/README", f"{store.prefix}/ab/cd/{'a' * 64}", "elsewhere/x"]
    for key in foreign:
        client.put_object(Bucket=store.bucket, Key=key, Body=b"not ours")
    orphan, _ = store.put(b"an orphan")
    assert list(store.digests()) == [orphan]
    assert cleanup_orphans(store, list) == [orphan]
    listed = client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
    assert sorted(item.get("Key", "") for item in listed) == sorted(foreign)


def test_a_presigned_url_serves_the_blob_as_a_zip_attachment(s3: S3Server) -> None:
    store = s3.store()
    digest, _ = store.put(b"zip bytes")
    url = store.signed_url(digest, 60, "acme-summarizer-1.0.0.zip")
    answer = httpx.get(url)
    assert answer.status_code == 200 and answer.content == b"zip bytes"
    assert answer.headers["content-type"] == "application/zip"
    assert 'filename="acme-summarizer-1.0.0.zip"' in answer.headers["content-disposition"]
    with pytest.raises(NotFound):
        store.signed_url("../" + digest[3:], 60, "x.zip")


@pytest.mark.parametrize("url", [
    "s3:/bucket", "http://bucket/x", "s3://", "s3://Bucket", "s3://ab", "s3://bucket/../x",
    "s3://bucket/a//b", "s3://bucket/a b", "s3://bu..cket",
])
def test_blob_urls_that_are_not_a_bucket_and_a_plain_prefix_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_blob_url(url)
    with pytest.raises(SettingsError, match="AGENTFACTORY_BLOB_URL"):
        ServerSettings.from_env({"AGENTFACTORY_BLOB_URL": url})


def test_blob_settings_from_the_environment() -> None:
    settings = ServerSettings.from_env({
        "AGENTFACTORY_BLOB_URL": "s3://my-bucket/registry/blobs",
        "AGENTFACTORY_S3_ENDPOINT": "http://127.0.0.1:9000/",
        "AGENTFACTORY_BLOB_REDIRECT": "1",
        "AGENTFACTORY_BLOB_REDIRECT_TTL": "120",
        "AGENTFACTORY_BLOB_GRACE": "600",
    })
    assert (settings.blob_url, settings.s3_endpoint) == (
        "s3://my-bucket/registry/blobs", "http://127.0.0.1:9000"
    )
    assert settings.blob_redirect and settings.blob_redirect_ttl_s == 120
    assert settings.blob_grace_s == 600
    assert parse_blob_url("s3://my-bucket/registry/blobs/") == ("my-bucket", "registry/blobs")
    with pytest.raises(SettingsError, match=r"AGENTFACTORY_BLOB_REDIRECT.*AGENTFACTORY_BLOB_URL"):
        ServerSettings.from_env({"AGENTFACTORY_BLOB_REDIRECT": "1"})
    with pytest.raises(SettingsError, match="AGENTFACTORY_S3_ENDPOINT"):
        ServerSettings.from_env({"AGENTFACTORY_S3_ENDPOINT": "ftp://host"})


def test_a_registry_keeps_its_releases_in_s3(s3: S3Server, db_url: str) -> None:
    store = s3.store()
    registry = Registry(make_engine(db_url), store, RegistryConfig())
    try:
        acme = make_publisher(registry, "acme")
        release = publish(registry, acme, version="1.0.0")
        orphan, _ = store.put(make_archive(version="9.9.9"))  # a publish that never committed
        assert set(store.digests()) == {release.digest, orphan}
        _, data = registry.download("acme/summarizer", "1.0.0")
        assert hashlib.sha256(data).hexdigest() == release.digest
        # Counted without reading the blob (the client is sent to a pre-signed URL instead).
        counted, nothing = registry.download("acme/summarizer", "1.0.0", read=False)
        assert (counted.digest, nothing) == (release.digest, b"")
        assert registry.cleanup_blobs(grace_s=HOUR) == []
        assert registry.cleanup_blobs(grace_s=HOUR, now=time.time() + 2 * HOUR) == [orphan]
        assert list(store.digests()) == [release.digest]
    finally:
        registry.close()

"""Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph, R2, moto), through boto3.

`S3BlobStore` keeps the `BlobStore` contract of `registry.blobs`:

- **content addressing**: the object key is `<prefix>/<sha256 hex>`, computed from the bytes
  before anything is sent; a key that is not 64 lower-case hex digits is refused (`NotFound`,
  or False from `exists`) before any request, so no key can reach outside the prefix.
- **atomic, idempotent put**: one `PutObject` carrying the bytes' sha256 as its
  `ChecksumSHA256`, so a service that checks it (AWS S3 does) refuses a body damaged on the
  way; an object is either wholly there or absent. Two processes putting the same bytes at once
  both succeed with the same object. Putting bytes already stored writes them again, which
  resets the object's age for the orphan cleanup's grace period (`registry.blobs.cleanup_orphans`).
- **digest check on read**: `get` re-hashes what came back; bytes that do not match are refused
  with `ArchiveError` and never served.
- **orphan cleanup**: `listing` pages through the keys under the prefix with their
  `LastModified`; keys that are not digests (someone else's objects) are never listed, so never
  deleted.
- **pre-signed downloads**: `signed_url` gives a short-lived GET URL for one blob.

Configuration comes from the server settings (`AGENTFACTORY_BLOB_URL=s3://bucket/prefix`,
`AGENTFACTORY_S3_ENDPOINT`, `AGENTFACTORY_S3_REGION`); credentials come from boto3's standard
chain (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, a profile, an
instance role) and are never logged or put in an error. Every failure to reach or use the
bucket is a `BlobStoreUnavailable` naming the bucket and prefix; `check()` (run at server start)
turns a missing bucket or missing credentials into that one clear error.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from registry.blobs import StoredBlob, is_digest, parse_blob_url
from registry.errors import ArchiveError, BlobStoreUnavailable, NotFound

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

_MISSING = {"404", "NoSuchKey", "NotFound"}
_NO_BUCKET = {"NoSuchBucket"}


def s3_client(
    endpoint: str | None = None, region: str | None = None,
    session: boto3.session.Session | None = None,
) -> S3Client:
    """A thread-safe boto3 S3 client. With an `endpoint` (MinIO, moto, ...) buckets are
    addressed by path, which needs no DNS name per bucket. Checksums are computed only when an
    operation needs them (some S3-compatible services refuse the newer default trailers); `put`
    sends its own SHA-256. `session` (default: a new one, from the standard AWS chain) holds the
    credentials."""
    config = Config(
        signature_version="s3v4",  # also for pre-signed URLs (boto3 may pick SigV2 for them)
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = session or boto3.session.Session()  # not thread-safe, unlike its client
    return session.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3BlobStore:
    """Blobs as objects `<prefix>/<sha256>` in one bucket (see the module docstring)."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._key_prefix = f"{self.prefix}/" if self.prefix else ""

    @classmethod
    def open(
        cls, url: str, *, endpoint: str | None = None, region: str | None = None
    ) -> S3BlobStore:
        """The store at `s3://bucket/prefix`, checked (`check`) before it is returned."""
        bucket, prefix = parse_blob_url(url)
        store = cls(s3_client(endpoint, region), bucket, prefix)
        store.check()
        return store

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _key(self, digest: str) -> str:
        return self._key_prefix + digest

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Turn every boto3 failure into `BlobStoreUnavailable` (no credential in the text)."""
        try:
            yield
        except ClientError as exc:
            code = _error_code(exc)
            reason = f"the bucket {self.bucket!r} does not exist" if code in _NO_BUCKET else (
                f"{what} failed: {code or 'error'} "
                f"{exc.response.get('Error', {}).get('Message', '')}".rstrip()
            )
            raise BlobStoreUnavailable(self.location, reason) from None
        except BotoCoreError as exc:  # no endpoint, no credentials, timeouts
            raise BlobStoreUnavailable(self.location, f"{what} failed: {exc}") from None

    def check(self) -> None:
        """Raise `BlobStoreUnavailable` unless the bucket exists and answers us."""
        with self._calling("reaching the bucket"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _error_code(exc) in _MISSING | _NO_BUCKET:  # a HEAD answer has no body
                    raise BlobStoreUnavailable(
                        self.location, f"the bucket {self.bucket!r} does not exist"
                    ) from None
                raise

    def put(self, data: bytes) -> tuple[str, bool]:
        raw = hashlib.sha256(data).digest()
        digest = raw.hex()
        existed = self.exists(digest)
        with self._calling("storing a blob"):
            self._client.put_object(
                Bucket=self.bucket, Key=self._key(digest), Body=data,
                ChecksumSHA256=base64.b64encode(raw).decode(),
            )
        return digest, not existed

    def get(self, digest: str) -> bytes:
        if not is_digest(digest):
            raise NotFound("blob", digest)
        with self._calling("reading a blob"):
            try:
                answer = self._client.get_object(Bucket=self.bucket, Key=self._key(digest))
            except ClientError as exc:
                if _error_code(exc) in _MISSING:
                    raise NotFound("blob", digest) from None
                raise
            with answer["Body"] as body:
                data = body.read()
        if hashlib.sha256(data).hexdigest() != digest:
            raise ArchiveError(f"stored blob {digest} is corrupt")
        return data

    def exists(self, digest: str) -> bool:
        if not is_digest(digest):
            return False
        with self._calling("looking up a blob"):
            try:
                self._client.head_object(Bucket=self.bucket, Key=self._key(digest))
            except ClientError as exc:
                if _error_code(exc) in _MISSING:
                    return False
                raise
        return True

    def delete(self, digest: str) -> None:
        if not is_digest(digest):
            raise NotFound("blob", digest)
        with self._calling("deleting a blob"):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(digest))

    def listing(self) -> Iterator[StoredBlob]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key_prefix
        )
        with self._calling("listing blobs"):
            for page in pages:
                for item in page.get("Contents", []):
                    rest = item.get("Key", "")[len(self._key_prefix):]
                    if is_digest(rest) and "LastModified" in item:
                        yield StoredBlob(rest, item["LastModified"].timestamp())

    def digests(self) -> Iterator[str]:
        return (blob.digest for blob in self.listing())

    def signed_url(self, digest: str, ttl_s: float, filename: str) -> str:
        """A GET URL for one blob, valid `ttl_s` seconds, answered as a zip attachment."""
        if not is_digest(digest):
            raise NotFound("blob", digest)
        with self._calling("signing a download URL"):
            return self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket, "Key": self._key(digest),
                    "ResponseContentType": "application/zip",
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                },
                ExpiresIn=max(1, int(ttl_s)),
            )

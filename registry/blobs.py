"""Content-addressed blob storage behind a small interface.

A blob's key is the sha256 hex of its bytes, so a stored blob can never be silently replaced:
writing the same bytes twice is a no-op and reading re-checks the digest. `LocalBlobStore`
writes to a temporary file in the same directory, fsyncs it, then renames it into place
(`ab/cd/<sha256>`), so a reader sees either the whole blob or none. `S3BlobStore`
(`registry.blobs_s3`) keeps the same contract in S3-compatible object storage.

Keys are 64 lower-case hex digits and nothing else: every store refuses any other key
(`NotFound` on `get`/`delete`, False on `exists`) before it touches storage, so no key can name
a path or object outside the store.

`cleanup_orphans` removes blobs no release refers to (left by a publish that crashed between the
blob write and the row commit) and stray temporary files. With a grace period it is safe while
other processes publish: it lists the blobs older than the grace period *first*, then reads the
digests releases refer to, so a publish that wrote its blob before the listing and takes less
than the grace period to commit is already in that set. `put` of bytes already stored resets the
blob's age, so a publish reusing an old orphan's bytes is protected the same way.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

from registry.errors import ArchiveError, NotFound


class StoredBlob(NamedTuple):
    digest: str
    modified: float  # seconds since the epoch: when it was last written


class BlobStore(Protocol):
    def put(self, data: bytes) -> tuple[str, bool]:
        """Store `data`; return `(sha256 hex, created)` (`created` False if it was there).
        Writing bytes already stored is a no-op for readers but resets their age."""
        ...

    def get(self, digest: str) -> bytes:
        """The bytes, re-hashed: `NotFound` if absent, `ArchiveError` if they do not match."""
        ...

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None: ...

    def digests(self) -> Iterator[str]: ...

    def listing(self) -> Iterator[StoredBlob]:
        """Every stored blob with the time it was last written."""
        ...


@runtime_checkable
class SignedUrls(Protocol):
    """A store whose blobs can be fetched directly by a client (a pre-signed URL)."""

    def signed_url(self, digest: str, ttl_s: float, filename: str) -> str: ...


def cleanup_orphans(
    store: BlobStore, known_digests: Callable[[], Iterable[str]], *,
    grace_s: float = 0.0, now: float | None = None,
) -> list[str]:
    """Delete every blob at least `grace_s` old whose digest `known_digests()` does not return;
    return the deleted digests. The listing comes before `known_digests()` (see above)."""
    cutoff = (time.time() if now is None else now) - grace_s
    candidates = [blob.digest for blob in list(store.listing()) if blob.modified <= cutoff]
    if not candidates:
        return []
    known = set(known_digests())
    removed = [d for d in candidates if d not in known]
    for digest in removed:
        store.delete(digest)
    return removed


def is_digest(key: str) -> bool:
    """True for exactly 64 lower-case hex digits: the only keys a store accepts."""
    return len(key) == 64 and all(c in "0123456789abcdef" for c in key)


def _check_digest(digest: str) -> None:
    if not is_digest(digest):
        raise NotFound("blob", digest)


# Bucket names as S3 allows them; prefixes of plain path segments (no `.`/`..`/empty ones).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def parse_blob_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> `("bucket", "some/prefix")`; `ValueError` otherwise.
    (Here, not in `registry.blobs_s3`, so settings can check it without loading boto3.)"""
    scheme, sep, rest = url.partition("://")
    if scheme != "s3" or not sep:
        raise ValueError("must be s3://BUCKET or s3://BUCKET/PREFIX")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"{bucket!r} is not a valid bucket name")
    prefix = prefix.strip("/")
    if prefix and not all(_SEGMENT.fullmatch(part) for part in prefix.split("/")):
        raise ValueError(f"prefix {prefix!r} must be plain path segments (letters, digits, ._-)")
    return bucket, prefix


class LocalBlobStore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> tuple[str, bool]:
        digest = hashlib.sha256(data).hexdigest()
        final = self._path(digest)
        if final.exists():
            os.utime(final)  # younger than any cleanup's grace period again (see above)
            return digest, False
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                if self._fsync:
                    os.fsync(out.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest, True

    def get(self, digest: str) -> bytes:
        _check_digest(digest)
        try:
            data = self._path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound("blob", digest) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise ArchiveError(f"stored blob {digest} is corrupt")
        return data

    def exists(self, digest: str) -> bool:
        return is_digest(digest) and self._path(digest).exists()

    def delete(self, digest: str) -> None:
        _check_digest(digest)
        self._path(digest).unlink(missing_ok=True)

    def digests(self) -> Iterator[str]:
        for path in self.root.glob("*/*/*"):
            if path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)  # a write that never reached its rename
            elif is_digest(path.name):
                yield path.name

    def listing(self) -> Iterator[StoredBlob]:
        for digest in self.digests():
            try:
                yield StoredBlob(digest, self._path(digest).stat().st_mtime)
            except FileNotFoundError:
                continue  # deleted since it was listed


class MemoryBlobStore:
    """In-memory store for tests; same contract as `LocalBlobStore`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.blobs: dict[str, bytes] = {}
        self.modified: dict[str, float] = {}
        self._clock = clock

    def put(self, data: bytes) -> tuple[str, bool]:
        digest = hashlib.sha256(data).hexdigest()
        created = digest not in self.blobs
        self.blobs[digest] = data
        self.modified[digest] = self._clock()
        return digest, created

    def get(self, digest: str) -> bytes:
        _check_digest(digest)
        try:
            data = self.blobs[digest]
        except KeyError:
            raise NotFound("blob", digest) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise ArchiveError(f"stored blob {digest} is corrupt")
        return data

    def exists(self, digest: str) -> bool:
        return digest in self.blobs

    def delete(self, digest: str) -> None:
        _check_digest(digest)
        self.blobs.pop(digest, None)
        self.modified.pop(digest, None)

    def digests(self) -> Iterator[str]:
        return iter(list(self.blobs))

    def listing(self) -> Iterator[StoredBlob]:
        return iter([StoredBlob(d, self.modified[d]) for d in list(self.blobs)])

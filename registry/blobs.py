"""Content-addressed blob storage behind a small interface.

A blob's key is the sha256 hex of its bytes, so a stored blob can never be silently replaced:
writing the same bytes twice is a no-op and reading re-checks the digest. `LocalBlobStore`
writes to a temporary file in the same directory, fsyncs it, then renames it into place
(`ab/cd/<sha256>`), so a reader sees either the whole blob or none. `cleanup_orphans` removes
blobs no release refers to (left by a publish that crashed between the blob write and the
row commit) and stray temporary files.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from registry.errors import ArchiveError, NotFound


class BlobStore(Protocol):
    def put(self, data: bytes) -> tuple[str, bool]:
        """Store `data`; return `(sha256 hex, created)` (`created` False if it was there)."""
        ...

    def get(self, digest: str) -> bytes: ...

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None: ...

    def digests(self) -> Iterator[str]: ...


def cleanup_orphans(store: BlobStore, known_digests: Iterable[str]) -> list[str]:
    """Delete every blob whose digest is not in `known_digests`; return the deleted digests."""
    known = set(known_digests)
    removed = [d for d in list(store.digests()) if d not in known]
    for digest in removed:
        store.delete(digest)
    return removed


def _check_digest(digest: str) -> None:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise NotFound("blob", digest)


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
        return self._path(digest).exists()

    def delete(self, digest: str) -> None:
        _check_digest(digest)
        self._path(digest).unlink(missing_ok=True)

    def digests(self) -> Iterator[str]:
        for path in self.root.glob("*/*/*"):
            if path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)  # a write that never reached its rename
            elif len(path.name) == 64:
                yield path.name


class MemoryBlobStore:
    """In-memory store for tests; same contract as `LocalBlobStore`."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, data: bytes) -> tuple[str, bool]:
        digest = hashlib.sha256(data).hexdigest()
        created = digest not in self.blobs
        self.blobs[digest] = data
        return digest, created

    def get(self, digest: str) -> bytes:
        try:
            return self.blobs[digest]
        except KeyError:
            raise NotFound("blob", digest) from None

    def exists(self, digest: str) -> bool:
        return digest in self.blobs

    def delete(self, digest: str) -> None:
        self.blobs.pop(digest, None)

    def digests(self) -> Iterator[str]:
        return iter(list(self.blobs))

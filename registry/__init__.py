"""The registry: signed, versioned agent packages with ratings and reviews.

Usable as a library without a web server; `Registry` is the facade. Names below are the
public API (see docs/registry.md). They are re-exported lazily: the package format and
signatures (`registry.archive`, `registry.signing`) must stay importable by client commands
without loading SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_getattr

if TYPE_CHECKING:
    from registry.archive import Package, build_archive, extract_package, read_archive
    from registry.blobs import BlobStore, LocalBlobStore, MemoryBlobStore, cleanup_orphans
    from registry.config import ArchiveLimits, RegistryConfig
    from registry.db import make_engine
    from registry.manifest import Check, Example, Manifest, parse_manifest
    from registry.schemas import (
        KeyPublic,
        PackageDetail,
        PackageSummary,
        Principal,
        PublisherPublic,
        RatingSummary,
        ReleasePublic,
        ReviewPage,
        ReviewPublic,
        SearchPage,
    )
    from registry.service import Registry
    from registry.signing import SigningKey, verify_release

_EXPORTS = {
    "ArchiveLimits": "registry.config",
    "BlobStore": "registry.blobs",
    "Check": "registry.manifest",
    "Example": "registry.manifest",
    "KeyPublic": "registry.schemas",
    "LocalBlobStore": "registry.blobs",
    "Manifest": "registry.manifest",
    "MemoryBlobStore": "registry.blobs",
    "Package": "registry.archive",
    "PackageDetail": "registry.schemas",
    "PackageSummary": "registry.schemas",
    "Principal": "registry.schemas",
    "PublisherPublic": "registry.schemas",
    "RatingSummary": "registry.schemas",
    "Registry": "registry.service",
    "RegistryConfig": "registry.config",
    "ReleasePublic": "registry.schemas",
    "ReviewPage": "registry.schemas",
    "ReviewPublic": "registry.schemas",
    "SearchPage": "registry.schemas",
    "SigningKey": "registry.signing",
    "build_archive": "registry.archive",
    "cleanup_orphans": "registry.blobs",
    "extract_package": "registry.archive",
    "make_engine": "registry.db",
    "parse_manifest": "registry.manifest",
    "read_archive": "registry.archive",
    "verify_release": "registry.signing",
}

__all__ = [
    "ArchiveLimits",
    "BlobStore",
    "Check",
    "Example",
    "KeyPublic",
    "LocalBlobStore",
    "Manifest",
    "MemoryBlobStore",
    "Package",
    "PackageDetail",
    "PackageSummary",
    "Principal",
    "PublisherPublic",
    "RatingSummary",
    "Registry",
    "RegistryConfig",
    "ReleasePublic",
    "ReviewPage",
    "ReviewPublic",
    "SearchPage",
    "SigningKey",
    "build_archive",
    "cleanup_orphans",
    "extract_package",
    "make_engine",
    "parse_manifest",
    "read_archive",
    "verify_release",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS)

"""The registry: signed, versioned agent packages with ratings and reviews.

Usable as a library without a web server; `Registry` is the facade. Names below are the
public API (see docs/registry.md).
"""

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

__all__ = [
    "ArchiveLimits", "BlobStore", "Check", "Example", "KeyPublic", "LocalBlobStore", "Manifest",
    "MemoryBlobStore", "Package", "PackageDetail", "PackageSummary", "Principal",
    "PublisherPublic", "RatingSummary", "Registry", "RegistryConfig", "ReleasePublic",
    "ReviewPage", "ReviewPublic", "SearchPage", "SigningKey", "build_archive",
    "cleanup_orphans", "extract_package", "make_engine", "parse_manifest", "read_archive",
    "verify_release",
]

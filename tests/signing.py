"""Signing test uploads the way `agentfactory publish` does.

`sign_archive` makes the current (v2) release signature, which also covers the archive's file
record, so the installer accepts what the tests publish; an archive that cannot be opened (tests
of refusals that come before the signature check) gets a v1 signature over its digest alone.
"""

from __future__ import annotations

import hashlib

from registry.archive import open_archive, record_digest
from registry.errors import RegistryError
from registry.signing import SigningKey


def sign_archive(key: SigningKey, archive: bytes, name: str, version: str) -> bytes:
    """The signature `agentfactory publish` would send for `archive` as `name` `version`."""
    digest = hashlib.sha256(archive).hexdigest()
    try:
        record: str | None = record_digest(open_archive(archive))
    except RegistryError:
        record = None
    return key.sign_release(digest, name, version, record)

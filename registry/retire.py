"""Graded retirement of releases: deprecate, yank (in `Registry`), revoke; the revocation list.

Three levels, each with a reason:
- **deprecated**: still resolves and installs; clients warn and may point to a `successor`
  package. Reversible.
- **yanked**: skipped by resolution except an exact pin (`registry.resolve`). Reversible.
- **revoked**: compromised or malicious; must not be installed or run anywhere. Irreversible.
  Resolution never returns it (an exact pin is `ReleaseRevoked`), downloads are refused, and the
  revocation list carries its signed statement.

Who: a release's publisher deprecates, yanks and revokes its own releases (token scope
`publish`); a token with the `admin` scope may revoke any release.

A revocation is a signed statement: the canonical JSON `statement_bytes(...)` naming the
package, version, archive digest and reason (`registry.statements`), signed either by one
of the publisher's current keys (the CLI signs with the publisher's local key; the registry
verifies before storing) or, for an admin revocation, by the registry's own key
(`registry.registry_key`). The statement and signature are stored verbatim, so anyone can check
them later against the key named.

The revocation list (`revocation_list`) holds every deprecated, yanked and revoked release; the
registry signs its canonical JSON as a whole (`statements.LIST_DOMAIN`) with its own key. `serial`
is the id of the newest revocation: a client refuses a list older than one it has seen.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from registry.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    RegistryError,
    RevokedKey,
    UnknownKey,
)
from registry.models import Package, Release, Revocation, SigningKeyRecord
from registry.names import normalize_name
from registry.schemas import (
    Principal,
    RetirementEntry,
    RevocationList,
    SignedRevocationList,
)
from registry.signing import SigningKey
from registry.statements import (
    LIST_DOMAIN,
    list_bytes,
    sign_statement,
    statement_bytes,
    verify_statement,
)

MAX_REASON = 1000


class InvalidRetirement(RegistryError):
    """A deprecation or revocation request that cannot be accepted (`reason` says why)."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"cannot {what}: {reason}")


def _reason(reason: str, what: str) -> str:
    if not reason or len(reason) > MAX_REASON:
        raise InvalidRetirement(what, f"a reason of 1 to {MAX_REASON} characters is required")
    return reason


def _owned(package: Package, principal: Principal, what: str, *, admin_may: bool) -> None:
    if "publish" not in principal.scopes and "admin" not in principal.scopes:
        raise PermissionDenied("the token lacks the 'publish' scope")
    if package.publisher_id == principal.publisher_id:
        return
    if admin_may and "admin" in principal.scopes:
        return
    raise PermissionDenied(f"{package.name} belongs to another publisher; it cannot {what}")


def deprecate(
    session: Session, principal: Principal, package: Package, release: Release,
    reason: str | None, successor: str | None,
) -> None:
    """Mark `release` deprecated with `reason` (None: undeprecate), naming `successor`."""
    _owned(package, principal, "be deprecated by you", admin_may=False)
    if reason is None:
        release.deprecated_reason = release.deprecated_successor = None
    else:
        release.deprecated_reason = _reason(reason, "deprecate")
        if successor is not None:
            found = session.exec(
                select(Package.name).where(Package.normalized_name == normalize_name(successor))
            ).first()
            if found is None:
                raise NotFound("package", successor)
            if normalize_name(found) == package.normalized_name:
                raise InvalidRetirement("deprecate", "a package cannot succeed itself")
            successor = found
        release.deprecated_successor = successor
    session.add(release)


def revocation_of(session: Session, release: Release) -> Revocation | None:
    return session.exec(select(Revocation).where(Revocation.release_id == release.id)).first()


def revocation_reasons(session: Session, release_ids: list[int | None]) -> dict[int, str]:
    """The reason of each revoked release of `release_ids`, by release id."""
    if not release_ids:
        return {}
    rows = session.exec(
        select(Revocation).where(col(Revocation.release_id).in_(release_ids))
    ).all()
    return {r.release_id: r.reason for r in rows}


def revoke(
    session: Session, principal: Principal, package: Package, release: Release, reason: str,
    signature: bytes | None, key_id: str | None, registry_key: SigningKey | None,
) -> Revocation:
    """Revoke `release`: with the publisher's `signature` by their key `key_id`, or, for an
    admin without one, signed here by `registry_key`."""
    _owned(package, principal, "be revoked by you", admin_may=True)
    reason = _reason(reason, "revoke")
    if release.revoked:
        raise Conflict(f"{package.name} {release.version} is already revoked")
    statement = statement_bytes(package.name, release.version, release.digest, reason)
    assert release.id is not None
    if signature is not None and key_id is not None:
        key = session.get(SigningKeyRecord, key_id)
        if key is None or key.publisher_id != package.publisher_id:
            raise UnknownKey(key_id)
        if key.revoked_at is not None:
            raise RevokedKey(key_id)
        verify_statement(key.public_key, signature, statement)
        signer, used = "publisher", key_id
    elif "admin" in principal.scopes and registry_key is not None:
        signature, signer, used = sign_statement(registry_key, statement), "registry", \
            registry_key.key_id
    else:
        raise InvalidRetirement(
            "revoke", "a publisher's revocation must be signed with their key "
            "(`agentfactory revoke` signs it with the local key)")
    row = Revocation(
        release_id=release.id, reason=reason, statement=statement.decode(), signature=signature,
        key_id=used, signer=signer, revoked_by=principal.publisher_id,
    )
    release.revoked = True
    session.add(release)
    session.add(row)
    session.flush()
    return row


def revocation_list(
    session: Session, registry_key: SigningKey, now: datetime | None = None
) -> SignedRevocationList:
    """Every retired release, signed as a whole by `registry_key`."""
    rows = session.exec(
        select(Release, Package)
        .join(Package, col(Package.id) == col(Release.package_id))
        .where(col(Release.yanked) | col(Release.revoked)
               | col(Release.deprecated_reason).is_not(None))
        .order_by(col(Package.normalized_name), col(Release.id))
    ).all()
    revocations = {r.release_id: r for r in session.exec(select(Revocation)).all()}
    keys = {k.key_id: k.public_key for k in session.exec(
        select(SigningKeyRecord).where(
            col(SigningKeyRecord.key_id).in_([r.key_id for r in revocations.values()])
        )
    ).all()}
    keys[registry_key.key_id] = registry_key.public_bytes
    entries = [_entry(release, package, revocations.get(release.id or 0), keys)
               for release, package in rows]
    serial = max(revocations.values(), key=lambda r: r.id or 0).id if revocations else 0
    listing = RevocationList(serial=serial or 0, issued_at=now or datetime.now(UTC),
                             entries=entries)
    payload = list_bytes(listing)
    signature = registry_key.sign(LIST_DOMAIN + payload)
    return SignedRevocationList(
        payload=payload.decode(), signature=_b64(signature), key_id=registry_key.key_id,
        public_key=_b64(registry_key.public_bytes),
    )


def _entry(
    release: Release, package: Package, revocation: Revocation | None, keys: dict[str, bytes]
) -> RetirementEntry:
    common: dict[str, Any] = {"name": package.name, "version": release.version,
                              "digest": release.digest, "latest": package.latest_version}
    if release.revoked and revocation is not None:
        public = keys.get(revocation.key_id)
        return RetirementEntry(
            **common, level="revoked", reason=revocation.reason,
            statement=revocation.statement, signature=_b64(revocation.signature),
            key_id=revocation.key_id, public_key=_b64(public) if public else None,
            signer=revocation.signer,
        )
    if release.yanked:
        return RetirementEntry(**common, level="yanked", reason=release.yank_reason or "yanked",
                               successor=release.deprecated_successor)
    return RetirementEntry(**common, level="deprecated", reason=release.deprecated_reason or "",
                           successor=release.deprecated_successor)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


__all__ = ["InvalidRetirement", "deprecate", "revocation_list", "revoke"]

"""Publishing: a pipeline of named steps over one `PublishContext`, all or nothing.

    parse -> validate -> authorize -> verify -> dedupe -> store -> index -> log

Each step reads and fills the context and raises a typed error to refuse; each is testable on
its own. The whole pipeline runs in one write transaction (see `registry.db`), which also
holds the release's audit event (`registry.audit`): both are committed or neither. The blob is
written (`store`) before the release row is flushed and committed (`index`), so a committed
release always has its blob. If anything fails after the blob was written, the transaction is
rolled back and the blob is deleted unless another release refers to the same digest. A crash
that kills the process between the two leaves only an orphan blob, which
`blobs.cleanup_orphans` removes; never a release without its bytes. The `log` step appends the
release to the public release log (`registry.log_store`) in the same transaction: a release is
committed with its log entry and signed tree head, or neither is.

When the registry has a vetter (the sandbox, in the marketplace), the read-only steps
(`PREFLIGHT`: parse to dedupe) run once beforehand and the package is vetted between the two
runs, outside any transaction: strangers' examples can run for seconds, which must not hold the
write lock, and only an authorized, correctly signed, new upload is worth sandbox time. The full
pipeline then checks everything again, so a race in between is still caught.

When the registry has a package check (the marketplace injects its plugins'
`agentfactory_validate_package` vetoes), `validate` calls it with the parsed manifest once the
archive's contents are known to be consistent, before any row is locked. The registry knows
nothing about plugins: a check is any callable that raises an `AgentFactoryError` to refuse.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_version
from packaging.version import Version
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.security import denied_tools
from registry import audit
from registry.accounts import require_scope
from registry.archive import MANIFEST, Package, open_archive, record_digest, validate_contents
from registry.blobs import BlobStore
from registry.checks import check_package_contents
from registry.config import RegistryConfig
from registry.errors import (
    ConcurrentCreation,
    Conflict,
    DuplicateDigest,
    DuplicateRelease,
    ManifestError,
    PermissionDenied,
    RevokedKey,
    SignatureMismatch,
    UnknownKey,
)
from registry.log_store import LoggedEntry, LogStore, entry_of
from registry.manifest import Manifest, parse_manifest
from registry.models import Namespace, Release, SigningKeyRecord, utcnow
from registry.models import Package as PackageRow
from registry.names import check_lookalike, check_reserved, normalize_name
from registry.schemas import Principal, ReleasePublic, join_list
from registry.signing import verify_release
from registry.workflows import check_workflows


@dataclass(frozen=True)
class VettingOutcome:
    """What a vetter found: `status` is "passed", "failed" or "unvetted" (no examples);
    `report` is the vetter's full JSON report; `failures` say what failed, one line each."""

    status: str
    report: dict[str, Any]
    failures: tuple[str, ...] = ()


Vetter = Callable[[Package], VettingOutcome]
PackageCheck = Callable[[Manifest], None]
"""Refuses a manifest by raising an `AgentFactoryError` (e.g. `core.errors.PackageVetoed`)."""


@dataclass
class PublishContext:
    session: Session
    blobs: BlobStore
    config: RegistryConfig
    principal: Principal
    archive: bytes
    signature: bytes
    key_id: str
    # Filled in by the steps, in order.
    files: dict[str, bytes] = field(default_factory=dict)
    digest: str = ""
    manifest: Manifest | None = None
    package: Package | None = None
    normalized_name: str = ""
    canonical_version: str = ""
    existing: PackageRow | None = None
    key: SigningKeyRecord | None = None
    blob_created: bool = False
    release: Release | None = None
    vetting: VettingOutcome | None = None
    package_check: PackageCheck | None = None
    log: LogStore | None = None
    logged: LoggedEntry | None = None

    def need_manifest(self) -> Manifest:
        if self.manifest is None:
            raise RuntimeError("the parse step has not run")
        return self.manifest


def step_parse(ctx: PublishContext) -> None:
    """Open the archive under the safety caps and parse `agent.json`."""
    ctx.files = open_archive(ctx.archive, ctx.config.limits)
    ctx.digest = hashlib.sha256(ctx.archive).hexdigest()
    if MANIFEST not in ctx.files:
        raise ManifestError(MANIFEST, [("", "no agent.json at the archive root")])
    ctx.manifest = parse_manifest(ctx.files[MANIFEST], limits=ctx.config.limits.manifest)
    ctx.normalized_name = normalize_name(ctx.manifest.name)
    ctx.canonical_version = canonicalize_version(ctx.manifest.version)


def step_validate(ctx: PublishContext) -> None:
    """Files and templates the manifest names; their bounds and `extends` chains; the agents
    their workflows run; denied tools; the package check; reserved and look-alike names."""
    manifest = ctx.need_manifest()
    templates = validate_contents(manifest, ctx.files)
    check_package_contents(manifest, ctx.files, templates, ctx.config.limits.manifest)
    check_workflows(manifest, manifest.templates, templates)
    for path, template in zip(manifest.templates, templates, strict=True):
        refused = denied_tools(template.tools, ctx.config.allowed_tools)
        if refused:
            raise ManifestError(path, [
                ("tools", f"tool {tool!r} is on the deny-list of this registry") for tool in refused
            ])
    if ctx.package_check is not None:
        ctx.package_check(manifest)
    ctx.package = Package(manifest, ctx.files, ctx.digest, len(ctx.archive), templates)
    # Locked (PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes publishes): concurrent
    # uploads of one package queue here, so each sees the releases of those before it and
    # `latest_version` is never computed from a stale row.
    ctx.existing = ctx.session.exec(
        select(PackageRow)
        .where(PackageRow.normalized_name == ctx.normalized_name)
        .with_for_update()
    ).first()
    if ctx.existing is not None:
        check_lookalike(manifest.name, ctx.existing.name)
        return
    # Nothing published in another namespace is compared: the namespace's holder may publish
    # any unreserved name in it (look-alike namespaces are refused when claimed, see
    # `registry.accounts`), so no squatter elsewhere can lock them out.
    check_reserved(manifest.name, ctx.config.reserved_names)


def step_authorize(ctx: PublishContext) -> None:
    """The token may publish, and its publisher owns the package's namespace."""
    require_scope(ctx.principal, "publish")
    namespace = ctx.normalized_name.split("/")[0]
    if namespace not in ctx.principal.namespaces:
        raise PermissionDenied(f"namespace {namespace!r} belongs to another publisher")
    if ctx.existing is not None and ctx.existing.publisher_id != ctx.principal.publisher_id:
        raise PermissionDenied(f"{ctx.existing.name} belongs to another publisher")


def step_verify(ctx: PublishContext) -> None:
    """The signature verifies with a current key of this publisher over digest+name+version
    (and, for a v2 signature, the record of the archive's files)."""
    manifest = ctx.need_manifest()
    key = ctx.session.get(SigningKeyRecord, ctx.key_id)
    if key is None or key.publisher_id != ctx.principal.publisher_id:
        raise UnknownKey(ctx.key_id)
    if key.revoked_at is not None:
        raise RevokedKey(ctx.key_id)
    signed_record = verify_release(
        key.public_key, ctx.signature, ctx.digest, manifest.name, manifest.version
    )
    # A v2 signature also vouches for the file record: it must be this archive's.
    if signed_record is not None and signed_record != record_digest(ctx.files):
        raise SignatureMismatch(ctx.key_id)
    ctx.key = key


def step_dedupe(ctx: PublishContext) -> None:
    """Refuse a version already published, or the same bytes under any name."""
    manifest = ctx.need_manifest()
    if ctx.existing is not None:
        clash = ctx.session.exec(
            select(Release.id).where(
                Release.package_id == ctx.existing.id,
                Release.canonical_version == ctx.canonical_version,
            )
        ).first()
        if clash is not None:
            raise DuplicateRelease(manifest.name, manifest.version)
    other = ctx.session.exec(
        select(PackageRow.name, Release.version)
        .join(Release, col(Release.package_id) == col(PackageRow.id))
        .where(Release.digest == ctx.digest)
    ).first()
    if other is not None:
        raise DuplicateDigest(ctx.digest, f"{other[0]} {other[1]}")


def step_store(ctx: PublishContext) -> None:
    """Write the blob (content-addressed, atomic) before any release row exists."""
    digest, created = ctx.blobs.put(ctx.archive)
    if digest != ctx.digest:  # pragma: no cover - a broken BlobStore implementation
        raise RuntimeError("blob store returned a different digest")
    ctx.blob_created = created


def _becomes_latest(new: str, current: str | None) -> bool:
    if current is None:
        return True
    new_v, cur_v = Version(new), Version(current)
    if new_v.is_prerelease != cur_v.is_prerelease:
        return not new_v.is_prerelease
    return new_v > cur_v


def apply_release_fields(row: PackageRow, package: Package) -> None:
    """Copy the searchable fields of `package` (the latest release) onto its package row."""
    manifest = package.manifest
    capabilities = sorted({c for t in package.templates for c in t.capabilities})
    tools = sorted({t for tpl in package.templates for t in tpl.tools})
    row.summary = manifest.summary
    row.description = manifest.description
    row.license = manifest.license
    row.homepage = manifest.homepage
    row.keywords = join_list(manifest.keywords)
    row.capabilities = join_list(capabilities)
    row.tools = join_list(tools)
    row.template_names = join_list(t.name for t in package.templates)
    row.readme = package.readme
    row.latest_version = manifest.version


def step_index(ctx: PublishContext) -> None:
    """Create the package (first release) and the release row (the database updates the
    search index in the same transaction, see `registry.search`)."""
    manifest, package = ctx.need_manifest(), ctx.package
    assert package is not None and ctx.key is not None
    row = ctx.existing
    if row is None:
        namespace = ctx.session.exec(
            select(Namespace).where(
                Namespace.normalized_name == ctx.normalized_name.split("/")[0]
            )
        ).one()
        assert namespace.id is not None
        row = PackageRow(
            name=manifest.name, normalized_name=ctx.normalized_name, namespace_id=namespace.id,
            publisher_id=ctx.principal.publisher_id,
        )
    if _becomes_latest(manifest.version, row.latest_version):
        apply_release_fields(row, package)
    row.updated_at = utcnow()
    ctx.session.add(row)
    ctx.session.flush()
    assert row.id is not None
    release = Release(
        package_id=row.id, version=manifest.version, canonical_version=ctx.canonical_version,
        prerelease=Version(manifest.version).is_prerelease, digest=ctx.digest,
        size=len(ctx.archive), signature=ctx.signature, key_id=ctx.key.key_id,
        manifest_json=ctx.files[MANIFEST].decode("utf-8"),
    )
    if ctx.vetting is not None:
        release.vetting_status = ctx.vetting.status
        release.vetting_report = json.dumps(ctx.vetting.report, sort_keys=True)
    ctx.session.add(release)
    ctx.session.flush()
    ctx.release = release


def step_log(ctx: PublishContext) -> None:
    """Append the release to the release log (its leaf, completed subtrees, signed head)."""
    if ctx.log is None:
        return  # a pipeline without a registry around it (tests of the other steps)
    assert ctx.release is not None and ctx.release.id is not None
    entry = entry_of(ctx.release, ctx.normalized_name)
    ctx.logged = ctx.log.append(ctx.session, entry, ctx.release.id)


Step = Callable[[PublishContext], None]
STEPS: tuple[tuple[str, Step], ...] = (
    ("parse", step_parse),
    ("validate", step_validate),
    ("authorize", step_authorize),
    ("verify", step_verify),
    ("dedupe", step_dedupe),
    ("store", step_store),
    ("index", step_index),
    ("log", step_log),
)
# The read-only steps: everything that can refuse an upload before its bytes are stored.
PREFLIGHT = STEPS[:5]


def release_public(release: Release, name: str) -> ReleasePublic:
    manifest = json.loads(release.manifest_json)
    return ReleasePublic(
        name=name, version=release.version, prerelease=release.prerelease,
        digest=release.digest, size=release.size, signature=release.signature,
        key_id=release.key_id, uploaded_at=release.uploaded_at, yanked=release.yanked,
        yank_reason=release.yank_reason, requires=manifest.get("requires", {}),
        permissions=manifest.get("permissions", []),
        vetting_status=release.vetting_status,
        vetting=json.loads(release.vetting_report) if release.vetting_report else None,
        deprecated_reason=release.deprecated_reason,
        deprecated_successor=release.deprecated_successor, revoked=release.revoked,
    )


def _discard_blob(ctx: PublishContext) -> None:
    still_used = ctx.session.exec(select(Release.id).where(Release.digest == ctx.digest)).first()
    if still_used is None:
        ctx.blobs.delete(ctx.digest)


def _audit(ctx: PublishContext) -> None:
    """The release's audit event, committed with it (`registry.audit`)."""
    if ctx.release is None:
        return  # a partial pipeline (the preflight) wrote nothing
    manifest = ctx.need_manifest()
    name = ctx.existing.name if ctx.existing else manifest.name
    audit.record(
        ctx.session, "package.publish", ctx.principal, "release", f"{name}@{manifest.version}",
        owner_id=ctx.existing.publisher_id if ctx.existing else ctx.principal.publisher_id,
        detail={"digest": ctx.digest, "key_id": ctx.key_id, "size": len(ctx.archive),
                "vetting": ctx.release.vetting_status},
    )


def run_publish(ctx: PublishContext, steps: Sequence[tuple[str, Step]] = STEPS) -> ReleasePublic:
    """Run `steps` and commit; on any failure roll back and remove a blob we wrote."""
    try:
        for _name, step in steps:
            step(ctx)
        _audit(ctx)
        ctx.session.commit()
    except BaseException as exc:
        ctx.session.rollback()
        if ctx.blob_created:
            _discard_blob(ctx)
            ctx.session.rollback()
        if isinstance(exc, IntegrityError):
            # A concurrent publish won a race the earlier checks could not see (PostgreSQL).
            manifest = ctx.need_manifest()
            if "digest" in str(exc.orig):
                raise DuplicateDigest(ctx.digest, "a concurrent upload") from None
            if "version" in str(exc.orig):
                raise DuplicateRelease(manifest.name, manifest.version) from None
            if "normalized_name" in str(exc.orig) and ctx.existing is None:
                raise ConcurrentCreation(manifest.name) from None
            raise Conflict(str(exc.orig).splitlines()[0]) from None
        raise
    assert ctx.release is not None and ctx.manifest is not None
    return release_public(ctx.release, ctx.existing.name if ctx.existing else ctx.manifest.name)

"""`Registry`: the facade the marketplace server and the CLI call.

A thin layer over `accounts`, `publish`, `search`, `resolve` and `reviews`: each method opens
its own short transaction (writes take the SQLite write lock up front, see `registry.db`) and
returns public records from `registry.schemas`, never ORM rows.

Every write appends its audit event (`registry.audit`) in its own transaction; a refused one
appends `refused:<Error>` in a transaction of its own once the write was rolled back
(`_refusals`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_version
from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from registry import accounts, audit, retire, reviews
from registry import search as search_mod
from registry.archive import read_archive
from registry.blobs import BlobStore, LocalBlobStore, cleanup_orphans
from registry.config import RegistryConfig
from registry.db import fts_available, init_db, make_engine, read_session, write_session
from registry.errors import (
    ConcurrentCreation,
    NotFound,
    PermissionDenied,
    ReleaseRevoked,
    UnknownKey,
    VettingFailed,
)
from registry.log_store import ConsistencyProof, EntryPage, InclusionProof, LogStore
from registry.models import (
    AccountDownload,
    ApiToken,
    DownloadClient,
    DownloadCount,
    Publisher,
    Release,
    SigningKeyRecord,
)
from registry.models import Package as PackageRow
from registry.names import normalize_part
from registry.publish import (
    PREFLIGHT,
    PackageCheck,
    PublishContext,
    Vetter,
    VettingOutcome,
    apply_release_fields,
    release_public,
    run_publish,
)
from registry.resolve import choose, find_package
from registry.resolve import resolve as resolve_release
from registry.schemas import (
    KeyPublic,
    PackageDetail,
    Principal,
    PublisherPublic,
    RatingSummary,
    ReleasePublic,
    ReviewPage,
    ReviewPublic,
    SearchPage,
    SignedRevocationList,
    TokenPublic,
    WebSessionPublic,
    WhoAmI,
    split_list,
)
from registry.signing import SigningKey, key_id_for
from registry.translog import SignedTreeHead


class Registry:
    def __init__(
        self, engine: Engine, blobs: BlobStore, config: RegistryConfig | None = None,
        vetter: Vetter | None = None, package_check: PackageCheck | None = None,
    ) -> None:
        self.engine = engine
        self.blobs = blobs
        self.config = config or RegistryConfig()
        self.vetter = vetter
        self.package_check = package_check
        init_db(engine)
        self.fts = fts_available(engine)
        # Where the registry's own key lives (`registry.registry_key`); `open` sets it.
        self.key_home: Path | None = None
        self._key: SigningKey | None = None
        # The public release log (`registry.log_store`), its heads signed by `log_key`.
        self.log = LogStore(self.log_key)
        self._log_synced = False

    @classmethod
    def open(
        cls, home: Path, url: str | None = None, config: RegistryConfig | None = None,
        vetter: Vetter | None = None, package_check: PackageCheck | None = None,
        blobs: BlobStore | None = None,
    ) -> Registry:
        """SQLite `home/registry.db` (or `url`) and `blobs` (default: the directory
        `home/blobs`)."""
        home = Path(home)
        home.mkdir(parents=True, exist_ok=True)
        blobs = LocalBlobStore(home / "blobs") if blobs is None else blobs
        engine = make_engine(url or f"sqlite:///{home / 'registry.db'}")
        registry = cls(engine, blobs, config, vetter, package_check)
        registry.key_home = home
        return registry

    def registry_key(self) -> SigningKey:
        """The registry's own signing key (created on first use under `key_home`)."""
        if self._key is None:
            from registry.registry_key import load_or_create

            if self.key_home is None:
                raise NotFound("registry key", "(this registry has no data directory)")
            self._key = load_or_create(self.key_home)
        return self._key

    def log_key(self) -> SigningKey:
        """The key that signs the release log's heads: the registry's own key; a registry with
        no data directory (built on an engine alone, as tests do) signs with a key of its own
        that lives as long as the object."""
        if self.key_home is None and self._key is None:
            self._key = SigningKey.generate()
        return self.registry_key()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- accounts ---------------------------------------------------------------------------

    def register_publisher(
        self, name: str, namespace: str | None, email: str | None = None
    ) -> tuple[PublisherPublic, str]:
        with write_session(self.engine) as s:
            publisher, token = accounts.register_publisher(s, name, namespace, email, self.config)
            who = audit.Actor(publisher.name, publisher.id)
            audit.record(s, "account.register", who, "account", publisher.name,
                         owner_id=publisher.id, detail={"namespace": namespace})
            return publisher, token

    def add_namespace(self, principal: Principal, namespace: str) -> None:
        with self._refusals("namespace.claim", principal, "namespace", namespace), \
                write_session(self.engine) as s:
            accounts.add_namespace(s, principal, namespace, self.config)
            audit.record(s, "namespace.claim", principal, "namespace", namespace,
                         owner_id=principal.publisher_id)

    def create_token(self, principal: Principal, scopes: set[str]) -> str:
        with self._refusals("token.create", principal, "token", "(new)"), \
                write_session(self.engine) as s:
            token = accounts.create_token(s, principal, scopes)
            audit.record(s, "token.create", principal, "token", _token_id(s, token),
                         owner_id=principal.publisher_id,
                         detail={"scopes": " ".join(sorted(scopes))})
            return token

    def operator_token(self, name: str) -> str:
        """A new `admin` token for the existing account `name`. For the operator, who holds the
        database (`agentfactory admin token`): no API operation reaches this. The audit trail
        records it as `token.create` by `system`."""
        with write_session(self.engine) as s:
            row = s.exec(
                select(Publisher).where(Publisher.normalized_name == normalize_part(name))
            ).first()
            if row is None or row.id is None:
                raise NotFound("publisher", name)
            operator = Principal(
                publisher_id=row.id, name=row.name, namespaces=frozenset(),
                scopes=frozenset({"admin"}), token_id="operator",
            )
            token = accounts.create_token(s, operator, {"admin"})
            audit.record(s, "token.create", audit.SYSTEM, "token", _token_id(s, token),
                         owner_id=row.id, detail={"scopes": "admin", "by": "operator"})
            return token

    def revoke_token(self, principal: Principal, token_id: str) -> None:
        with self._refusals("token.revoke", principal, "token", token_id), \
                write_session(self.engine) as s:
            accounts.revoke_token(s, principal, token_id)
            audit.record(s, "token.revoke", principal, "token", token_id,
                         owner_id=principal.publisher_id)

    def tokens(self, principal: Principal) -> list[TokenPublic]:
        with read_session(self.engine) as s:
            return accounts.tokens(s, principal)

    def authenticate(self, token: str) -> Principal:
        return accounts.authenticate_on(self.engine, token)

    def open_web_session(
        self, token: str, ttl: timedelta, now: datetime | None = None
    ) -> tuple[str, WebSessionPublic]:
        """Sign a browser in with `token`: the new session's id (shown once) and record."""
        with self._refusals("session.sign_in", audit.ANONYMOUS, "session", "(new)"), \
                write_session(self.engine) as s:
            session_id, opened = accounts.open_web_session(s, token, ttl, now or datetime.now(UTC))
            who = opened.principal
            audit.record(s, "session.sign_in", who, "session", who.name,
                         owner_id=who.publisher_id, detail={"token_id": who.token_id})
            return session_id, opened

    def web_session(self, session_id: str, now: datetime | None = None) -> WebSessionPublic | None:
        with read_session(self.engine) as s:
            return accounts.web_session(s, session_id, now or datetime.now(UTC))

    def close_web_session(self, session_id: str) -> None:
        with write_session(self.engine) as s:
            open_ = accounts.web_session(s, session_id, datetime.now(UTC))
            accounts.close_web_session(s, session_id)
            if open_ is not None:
                who = open_.principal
                audit.record(s, "session.sign_out", who, "session", who.name,
                             owner_id=who.publisher_id)

    def publisher(self, name: str) -> PublisherPublic:
        with read_session(self.engine) as s:
            row = s.exec(
                select(Publisher).where(Publisher.normalized_name == normalize_part(name))
            ).first()
            if row is None:
                raise NotFound("publisher", name)
            return accounts.publisher_public(s, row)

    # -- keys -------------------------------------------------------------------------------

    def add_key(
        self, principal: Principal, public_key: bytes, rotation_signature: bytes | None = None,
        signed_by: str | None = None,
    ) -> KeyPublic:
        action = "key.add" if signed_by is None else "key.rotate"
        with self._refusals(action, principal, "key", key_id_for(public_key)), \
                write_session(self.engine) as s:
            key = accounts.add_key(s, principal, public_key, rotation_signature, signed_by)
            audit.record(s, "key.rotate" if key.signed_by else "key.add", principal, "key",
                         key.key_id, owner_id=principal.publisher_id,
                         detail={"signed_by": key.signed_by})
            return key

    def revoke_key(self, principal: Principal, key_id: str) -> KeyPublic:
        with self._refusals("key.revoke", principal, "key", key_id), \
                write_session(self.engine) as s:
            key = accounts.revoke_key(s, principal, key_id)
            audit.record(s, "key.revoke", principal, "key", key_id,
                         owner_id=principal.publisher_id)
            return key

    def keys(self, publisher: str) -> list[KeyPublic]:
        with read_session(self.engine) as s:
            return accounts.keys(s, publisher)

    def key(self, key_id: str) -> KeyPublic:
        with read_session(self.engine) as s:
            record = s.get(SigningKeyRecord, key_id)
            if record is None:
                raise UnknownKey(key_id)
            owner = s.get(Publisher, record.publisher_id)
            assert owner is not None
            return accounts.key_public(record, owner.name)

    # -- packages ---------------------------------------------------------------------------

    def publish(
        self, principal: Principal, archive: bytes, signature: bytes, key_id: str
    ) -> ReleasePublic:
        """Run the pipeline (its `index` step records the audit event); a refusal is recorded
        against the release the archive names, or its digest when it names none."""
        seen: list[PublishContext] = []
        try:
            return self._publish(principal, archive, signature, key_id, seen)
        except Exception as exc:
            manifest = next((c.manifest for c in reversed(seen) if c.manifest), None)
            if manifest is None:
                target, owner = "sha256:" + hashlib.sha256(archive).hexdigest(), None
            else:
                target, owner = f"{manifest.name}@{manifest.version}", self._owner(manifest.name)
            audit.record_refusal(
                self.engine, exc, "package.publish", principal, "release", target,
                owner_id=owner, detail={"key_id": key_id},
            )
            raise

    def _publish(
        self, principal: Principal, archive: bytes, signature: bytes, key_id: str,
        seen: list[PublishContext],
    ) -> ReleasePublic:
        vetting = self._vet(principal, archive, signature, key_id, seen) if self.vetter else None
        self._sync_log()
        bind = self.engine.execution_options(registry_write=True)
        for attempt in range(2):
            with Session(bind, expire_on_commit=False) as s:
                ctx = PublishContext(
                    session=s, blobs=self.blobs, config=self.config, principal=principal,
                    archive=archive, signature=signature, key_id=key_id, vetting=vetting,
                    package_check=self.package_check, log=self.log,
                )
                seen.append(ctx)
                try:
                    return run_publish(ctx)
                except ConcurrentCreation:
                    # Lost the race to create a new package (PostgreSQL): the second attempt
                    # finds it, waits on its row lock, and is judged against what won.
                    if attempt:
                        raise
        raise AssertionError("unreachable")

    def _vet(
        self, principal: Principal, archive: bytes, signature: bytes, key_id: str,
        seen: list[PublishContext],
    ) -> VettingOutcome:
        """Run the read-only steps, then the vetter outside any transaction (see `publish`)."""
        assert self.vetter is not None
        with read_session(self.engine) as s:
            ctx = PublishContext(
                session=s, blobs=self.blobs, config=self.config, principal=principal,
                archive=archive, signature=signature, key_id=key_id,
                package_check=self.package_check,
            )
            seen.append(ctx)
            for _name, step in PREFLIGHT:
                step(ctx)
            s.rollback()  # release any row lock the preflight took
        assert ctx.package is not None
        outcome = self.vetter(ctx.package)
        if outcome.status == "failed":
            manifest = ctx.package.manifest
            raise VettingFailed(manifest.name, manifest.version, outcome.failures)
        return outcome

    def search(
        self, query: str = "", *, sort: str = "relevance", page: int = 1, per_page: int = 20,
        capability: str | None = None, tool: str | None = None, publisher: str | None = None,
    ) -> SearchPage:
        with read_session(self.engine) as s:
            return search_mod.search(
                s, query, sort=sort, page=page, per_page=per_page, capability=capability,
                tool=tool, publisher=publisher, fts=self.fts,
                prior_weight=self.config.prior_weight,
            )

    def package(self, name: str) -> PackageDetail:
        with read_session(self.engine) as s:
            row = find_package(s, name)
            publisher = s.get(Publisher, row.publisher_id)
            assert publisher is not None
            versions = s.exec(
                select(Release.version).where(Release.package_id == row.id)
                .order_by(col(Release.uploaded_at))
            ).all()
            rating = reviews.rating_summary(s, row, self.config.prior_weight)
            return PackageDetail(
                name=row.name, summary=row.summary, publisher=publisher.name,
                latest_version=row.latest_version, keywords=split_list(row.keywords),
                capabilities=split_list(row.capabilities), tools=split_list(row.tools),
                templates=split_list(row.template_names), downloads=row.downloads,
                rating_count=rating.count, rating_mean=rating.mean,
                rating_bayesian=rating.bayesian, updated_at=row.updated_at,
                description=row.description, license=row.license, homepage=row.homepage,
                readme=row.readme, rating=rating, versions=list(versions),
                created_at=row.created_at,
            )

    def releases(self, name: str) -> list[ReleasePublic]:
        with read_session(self.engine) as s:
            row = find_package(s, name)
            rows = s.exec(
                select(Release).where(Release.package_id == row.id)
                .order_by(col(Release.uploaded_at), col(Release.id))
            ).all()
            reasons = retire.revocation_reasons(s, [r.id for r in rows if r.revoked])
            return [release_public(r, row.name).model_copy(
                update={"revoke_reason": reasons.get(r.id or 0)}) for r in rows]

    def resolve(self, name: str, specifier: str = "", prereleases: bool = False) -> ReleasePublic:
        with read_session(self.engine) as s:
            package, release = resolve_release(s, name, specifier, prereleases)
            return release_public(release, package.name)

    def _release(
        self, s: Session, name: str, version: str, *, lock: bool = False
    ) -> tuple[PackageRow, Release]:
        package = find_package(s, name, lock=lock)
        release = s.exec(
            select(Release).where(
                Release.package_id == package.id,
                Release.canonical_version == canonicalize_version(version),
            )
        ).first()
        if release is None:
            raise NotFound("release", f"{package.name} {version}")
        return package, release

    def download(
        self, name: str, version: str, client: str | None = None, *, read: bool = True
    ) -> tuple[ReleasePublic, bytes]:
        """The release and its archive bytes; counts one download.

        `client` names who asks (the marketplace passes `publisher:<id>` for a signed-in
        caller, else `address:<ip>`): each client counts once per release per day, however
        often it downloads. None counts every call (a trusted, in-process caller).
        `read=False` counts the download and returns no bytes: the caller sends the client to
        the blob store itself (a pre-signed URL), and the client checks the digest.
        """
        with write_session(self.engine) as s:
            package, release = self._release(s, name, version)
            if release.revoked:
                self._refuse_revoked(s, package, release)
            data = self.blobs.get(release.digest) if read else b""
            _remember_account_download(s, release, client)
            if client is None or _first_download_today(s, release, client):
                s.execute(
                    update(PackageRow).where(col(PackageRow.id) == package.id)
                    .values(downloads=col(PackageRow.downloads) + 1)
                )
                _count_download(s, release)
                # Once per client per release a day, like the count: installs in a loop do not
                # grow the trail. An address is never stored: such a client is anonymous.
                kind, _, ident = (client or "").partition(":")
                who = audit.account(s, int(ident)) if kind == "publisher" and ident.isdigit() \
                    else audit.ANONYMOUS if client else audit.SYSTEM
                audit.record(s, "release.download", who, "release",
                             f"{package.name}@{release.version}", owner_id=package.publisher_id)
            return release_public(release, package.name), data

    @staticmethod
    def _refuse_revoked(s: Session, package: PackageRow, release: Release) -> None:
        revocation = retire.revocation_of(s, release)
        raise ReleaseRevoked(package.name, release.version,
                             revocation.reason if revocation else "revoked")

    # -- retirement (registry.retire) --------------------------------------------------------

    def deprecate(
        self, principal: Principal, name: str, version: str, reason: str | None,
        successor: str | None = None,
    ) -> ReleasePublic:
        """Deprecate a release with `reason` (None: undeprecate), naming a `successor`."""
        with write_session(self.engine) as s:
            package, release = self._release(s, name, version, lock=True)
            retire.deprecate(s, principal, package, release, reason, successor)
            return release_public(release, package.name)

    def revoke(
        self, principal: Principal, name: str, version: str, reason: str,
        signature: bytes | None = None, key_id: str | None = None,
    ) -> ReleasePublic:
        """Revoke a release (see `registry.retire.revoke`); irreversible."""
        with write_session(self.engine) as s:
            package, release = self._release(s, name, version, lock=True)
            admin_signs = signature is None and "admin" in principal.scopes
            row = retire.revoke(s, principal, package, release, reason, signature, key_id,
                                self.registry_key() if admin_signs else None)
            self._refresh_latest(s, package)
            public = release_public(release, package.name)
            return public.model_copy(update={"revoke_reason": row.reason})

    def revocations(self) -> SignedRevocationList:
        """The signed list of every deprecated, yanked and revoked release."""
        key = self.registry_key()
        with read_session(self.engine) as s:
            return retire.revocation_list(s, key)

    def whoami(self, principal: Principal) -> WhoAmI:
        with read_session(self.engine) as s:
            row = s.get(Publisher, principal.publisher_id)
            assert row is not None
            public = accounts.publisher_public(s, row)
        return WhoAmI(publisher=public.name, namespaces=public.namespaces,
                      token_id=principal.token_id, scopes=sorted(principal.scopes))

    def _set_yanked(
        self, principal: Principal, name: str, version: str, reason: str | None
    ) -> ReleasePublic:
        action = "release.yank" if reason is not None else "release.unyank"
        with self._refusals(action, principal, "release", f"{name}@{version}", package=name), \
                write_session(self.engine) as s:
            accounts.require_scope(principal, "publish")
            # Locked: a concurrent yank or publish must not recompute latest_version from
            # what this transaction is changing.
            package, release = self._release(s, name, version, lock=True)
            if package.publisher_id != principal.publisher_id and "admin" not in principal.scopes:
                raise PermissionDenied(f"{package.name} belongs to another publisher")
            release.yanked, release.yank_reason = reason is not None, reason
            s.add(release)
            s.flush()
            self._refresh_latest(s, package)
            audit.record(s, action, principal, "release", f"{package.name}@{release.version}",
                         owner_id=package.publisher_id, detail={"reason": reason})
            return release_public(release, package.name)

    def yank(self, principal: Principal, name: str, version: str, reason: str) -> ReleasePublic:
        return self._set_yanked(principal, name, version, reason or "yanked")

    def unyank(self, principal: Principal, name: str, version: str) -> ReleasePublic:
        return self._set_yanked(principal, name, version, None)

    def _refresh_latest(self, s: Session, package: PackageRow) -> None:
        """Point the package's listing at its best non-yanked release (after a yank/unyank)."""
        rows = s.execute(
            select(Release.id, Release.version, Release.yanked, Release.revoked)
            .where(Release.package_id == package.id)
        ).all()
        candidates = [(r[0], r[1], r[2] or r[3]) for r in rows]
        best = choose(candidates, "") or choose(candidates, "", prereleases=True)
        if best is None:
            package.latest_version = None
        else:
            release = s.get(Release, best)
            assert release is not None
            if release.version != package.latest_version:
                apply_release_fields(package, read_archive(self.blobs.get(release.digest)))
        s.add(package)

    def cleanup_blobs(self, grace_s: float = 0.0, now: float | None = None) -> list[str]:
        """Delete blobs no release refers to that are at least `grace_s` old. Without a grace
        period, run it only when no publish is in flight; with one longer than any publish
        takes, it is safe at any time, from any process (`registry.blobs.cleanup_orphans`)."""

        def known() -> list[str]:
            with read_session(self.engine) as s:
                return list(s.exec(select(Release.digest)).all())

        return cleanup_orphans(self.blobs, known, grace_s=grace_s, now=now)

    # -- reviews ----------------------------------------------------------------------------

    def rate(
        self, principal: Principal, name: str, stars: int, title: str = "", body: str = "",
        version: str | None = None,
    ) -> ReviewPublic:
        with self._refusals("review.write", principal, "review", name, package=name), \
                write_session(self.engine) as s:
            review = reviews.rate(s, principal, name, stars, title, body, version, self.config)
            self._record_review(s, "review.write", principal, review, {"stars": stars})
            return review

    def delete_review(self, principal: Principal, name: str) -> None:
        with self._refusals("review.delete", principal, "review", name, package=name), \
                write_session(self.engine) as s:
            reviews.delete_review(s, principal, name)
            package = find_package(s, name)
            audit.record(s, "review.delete", principal, "review", package.name,
                         owner_id=package.publisher_id)

    def reply(self, principal: Principal, review_id: int, text: str) -> ReviewPublic:
        with self._refusals("review.reply", principal, "review", f"#{review_id}"), \
                write_session(self.engine) as s:
            review = reviews.reply(s, principal, review_id, text, self.config)
            self._record_review(s, "review.reply", principal, review)
            return review

    def flag(self, principal: Principal, review_id: int, reason: str) -> ReviewPublic:
        with self._refusals("review.flag", principal, "review", f"#{review_id}"), \
                write_session(self.engine) as s:
            review = reviews.flag(s, principal, review_id, reason)
            self._record_review(s, "review.flag", principal, review)
            return review

    def _record_review(
        self, s: Session, action: str, principal: Principal, review: ReviewPublic,
        detail: dict[str, Any] | None = None,
    ) -> None:
        package = find_package(s, review.package)
        audit.record(s, action, principal, "review", review.package,
                     owner_id=package.publisher_id,
                     detail={"review_id": review.id, **(detail or {})})

    # -- release log ------------------------------------------------------------------------

    def _sync_log(self) -> None:
        """Once per object: append releases published before the log existed."""
        if not self._log_synced:
            with write_session(self.engine) as s:
                self.log.sync(s)
            self._log_synced = True

    def log_head(self) -> SignedTreeHead:
        self._sync_log()
        with read_session(self.engine) as s:
            return self.log.head(s)

    def log_inclusion(self, name: str, version: str) -> InclusionProof:
        self._sync_log()
        with read_session(self.engine) as s:
            return self.log.inclusion(s, name, version)

    def log_consistency(self, old: int, new: int | None = None) -> ConsistencyProof:
        self._sync_log()
        with read_session(self.engine) as s:
            return self.log.consistency(s, old, new)

    def log_entries(self, start: int, limit: int) -> EntryPage:
        self._sync_log()
        with read_session(self.engine) as s:
            return self.log.entries(s, start, limit)

    # -- audit ------------------------------------------------------------------------------

    def audit_events(self, viewer: Principal, query: audit.AuditQuery) -> audit.AuditPage:
        with read_session(self.engine) as s:
            return audit.events(s, viewer, query)

    @contextmanager
    def _refusals(
        self, action: str, actor: Principal | audit.Actor, object_type: str, object_id: str,
        *, package: str | None = None,
    ) -> Iterator[None]:
        """Record a write the block refuses (after its transaction rolled back); the events on
        `package` are its publisher's to see too."""
        try:
            yield
        except Exception as exc:
            owner = self._owner(package) if package is not None else None
            audit.record_refusal(self.engine, exc, action, actor, object_type, object_id,
                                 owner_id=owner)
            raise

    def _owner(self, name: str) -> int | None:
        """The account that owns package `name`; None when there is no such package."""
        try:
            with read_session(self.engine) as s:
                return find_package(s, name).publisher_id
        except Exception:
            return None

    def reviews(
        self, name: str, page: int = 1, per_page: int = 20, verified: bool | None = None
    ) -> ReviewPage:
        with read_session(self.engine) as s:
            return reviews.list_reviews(s, name, page, per_page, verified)

    def rating(self, name: str) -> RatingSummary:
        with read_session(self.engine) as s:
            return reviews.rating_summary(s, find_package(s, name), self.config.prior_weight)


def _token_id(s: Session, token: str) -> str:
    """The id of `token` (just issued in this session): events name tokens by id only."""
    return s.exec(
        select(ApiToken.token_id).where(ApiToken.token_hash == accounts.hash_token(token))
    ).one()


def _insert(s: Session, table: type[SQLModel], values: dict[str, Any]) -> Any:
    """An INSERT of `values` into `table` that can say ON CONFLICT, in the session's dialect."""
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).values(**values)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).values(**values)


def _remember_account_download(s: Session, release: Release, client: str | None) -> None:
    """Record that the account of `client` (`publisher:<id>`) downloaded `release`: the
    evidence a verified review needs. Other clients (an address, None) are no account."""
    kind, _, ident = (client or "").partition(":")
    if kind != "publisher" or not ident.isdigit():
        return
    assert release.id is not None
    values = {"publisher_id": int(ident), "release_id": release.id, "first_at": datetime.now(UTC)}
    s.execute(_insert(s, AccountDownload, values).on_conflict_do_nothing())


def _first_download_today(s: Session, release: Release, client: str) -> bool:
    """Record that `client` downloaded `release` today; False when it already had."""
    assert release.id is not None
    today = datetime.now(UTC).date()
    who = hashlib.sha256(client.encode("utf-8", errors="surrogatepass")).hexdigest()
    stmt = _insert(s, DownloadClient, {"release_id": release.id, "day": today, "client": who})
    # RETURNING, not rowcount: through the ORM session, PostgreSQL's driver reports no rowcount
    # for an INSERT ... ON CONFLICT DO NOTHING, and every download looked like a repeat there.
    returned = s.execute(stmt.on_conflict_do_nothing().returning(col(DownloadClient.release_id)))
    inserted = returned.first() is not None
    if inserted:
        # Only today's rows can deduplicate anything; yesterday's are dead weight.
        s.execute(delete(DownloadClient).where(col(DownloadClient.day) < today))
    return inserted


def _count_download(s: Session, release: Release) -> None:
    assert release.id is not None
    today = datetime.now(UTC).date()
    values: dict[str, Any] = {"release_id": release.id, "day": today, "count": 1}
    stmt = _insert(s, DownloadCount, values).on_conflict_do_update(
        index_elements=["release_id", "day"], set_={"count": DownloadCount.count + 1}
    )
    s.execute(stmt)

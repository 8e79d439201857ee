"""SQLModel tables of the registry.

The database, not only the code, enforces the rules: unique normalized names (publishers,
namespaces, packages), one release per `(package, canonical_version)`, one release per archive
digest (64 lowercase hex characters), one review per `(package, reviewer)`, stars between 1 and
5, non-negative counters, one counted download per `(release, day, client)`, one download
record per `(account, release)` (what verifies a review), one revocation per release, and
foreign keys everywhere. Display and normalized values are stored
side by side. Rows never leave the registry: the facade returns `registry.schemas` records.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    LargeBinary,
    Text,
    UniqueConstraint,
    false,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class PublisherBase(SQLModel):
    name: str = Field(max_length=64)
    email: str | None = Field(default=None, max_length=320)


class Publisher(PublisherBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    normalized_name: str = Field(unique=True, index=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class Namespace(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    normalized_name: str = Field(unique=True, index=True, max_length=64)
    publisher_id: int = Field(foreign_key="publisher.id", index=True)


class ApiToken(SQLModel, table=True):
    """Only the sha256 of a token is stored; the plaintext is shown once, at creation."""

    __tablename__ = "api_token"
    __table_args__ = (CheckConstraint("length(token_hash) = 64", name="token_hash_len"),)

    id: int | None = Field(default=None, primary_key=True)
    token_id: str = Field(unique=True, index=True, max_length=32)
    publisher_id: int = Field(foreign_key="publisher.id", index=True)
    token_hash: str = Field(unique=True, index=True, max_length=64)
    scopes: str = Field(max_length=100)  # space-separated subset of publish/review/admin
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class WebSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random 256-bit id; only its sha256 is stored, so a
    database leak signs nobody in. The session acts with the token it was opened with (its
    scopes; revoking the token ends it) and ends at `expires_at` or at sign-out (row deleted)."""

    __tablename__ = "web_session"
    __table_args__ = (CheckConstraint("length(id_hash) = 64", name="web_session_id_hash_len"),)

    id: int | None = Field(default=None, primary_key=True)
    id_hash: str = Field(unique=True, index=True, max_length=64)
    publisher_id: int = Field(foreign_key="publisher.id", index=True)
    token_id: str = Field(foreign_key="api_token.token_id", max_length=32)
    csrf_secret: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)


class SigningKeyRecord(SQLModel, table=True):
    __tablename__ = "signing_key"

    key_id: str = Field(primary_key=True, max_length=32)
    publisher_id: int = Field(foreign_key="publisher.id", index=True)
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signed_by: str | None = Field(default=None, max_length=32)
    rotation_signature: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class PackageBase(SQLModel):
    name: str = Field(max_length=130)
    summary: str = Field(default="", max_length=300)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    license: str = Field(default="", max_length=100)
    homepage: str | None = None


class Package(PackageBase, table=True):
    __table_args__ = (
        CheckConstraint("downloads >= 0", name="package_downloads_nonneg"),
        CheckConstraint("review_count >= 0 AND stars_sum >= 0", name="package_reviews_nonneg"),
    )

    id: int | None = Field(default=None, primary_key=True)
    normalized_name: str = Field(unique=True, index=True, max_length=130)
    namespace_id: int = Field(foreign_key="namespace.id", index=True)
    publisher_id: int = Field(foreign_key="publisher.id", index=True)
    # Search fields of the latest release; list-valued ones are "|a|b|" so LIKE '%|a|%' works.
    keywords: str = ""
    capabilities: str = ""
    tools: str = ""
    template_names: str = ""
    latest_version: str | None = None
    readme: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)
    downloads: int = Field(default=0, index=True)
    # Review aggregates, recomputed from review rows inside every review transaction.
    review_count: int = 0
    stars_sum: int = 0
    stars_1: int = 0
    stars_2: int = 0
    stars_3: int = 0
    stars_4: int = 0
    stars_5: int = 0


class Release(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("package_id", "canonical_version", name="release_package_version"),
        CheckConstraint("length(digest) = 64", name="release_digest_len"),
        CheckConstraint("size > 0", name="release_size_pos"),
    )

    id: int | None = Field(default=None, primary_key=True)
    package_id: int = Field(foreign_key="package.id", index=True)
    version: str = Field(max_length=64)
    canonical_version: str = Field(max_length=64)
    prerelease: bool = False
    digest: str = Field(unique=True, max_length=64)
    size: int
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_id: str = Field(foreign_key="signing_key.key_id", max_length=32)
    uploaded_at: datetime = Field(default_factory=utcnow)
    yanked: bool = False
    yank_reason: str | None = None
    # Deprecated: still installs, with a warning (and maybe a successor package). Revoked: a
    # `Revocation` row exists (the signed statement); the flag makes resolution cheap.
    deprecated_reason: str | None = Field(default=None, max_length=1000)
    deprecated_successor: str | None = Field(default=None, max_length=130)
    revoked: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    manifest_json: str = Field(sa_column=Column(Text, nullable=False))
    # What the sandbox found when the release was published: "passed", "unvetted" (the package
    # declares no examples) or "not-run" (the registry had no vetter). A failing package is
    # refused, so "failed" is never stored. The report is the sandbox's JSON, kept verbatim.
    vetting_status: str = Field(
        default="not-run", max_length=16, sa_column_kwargs={"server_default": "not-run"}
    )
    vetting_report: str | None = Field(default=None, sa_column=Column(Text))


class Review(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("package_id", "reviewer_id", name="review_one_per_user"),
        CheckConstraint("stars BETWEEN 1 AND 5", name="review_stars_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    package_id: int = Field(foreign_key="package.id", index=True)
    reviewer_id: int = Field(foreign_key="publisher.id", index=True)
    stars: int
    title: str = ""
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    version: str | None = None
    # The release reviewed, and whether its author had downloaded it when writing (verified
    # reviews alone make the rating; unverified ones are shown apart, see `registry.reviews`).
    release_id: int | None = Field(default=None, foreign_key="release.id", index=True)
    verified: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    reply: str | None = Field(default=None, sa_column=Column(Text))
    reply_at: datetime | None = None
    flag_count: int = 0


class ReviewFlag(SQLModel, table=True):
    __tablename__ = "review_flag"
    __table_args__ = (UniqueConstraint("review_id", "flagger_id", name="flag_one_per_user"),)

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(foreign_key="review.id", index=True, ondelete="CASCADE")
    flagger_id: int = Field(foreign_key="publisher.id")
    reason: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class DownloadCount(SQLModel, table=True):
    """Downloads per release per day; `Package.downloads` holds the running total."""

    __tablename__ = "download_count"
    __table_args__ = (CheckConstraint("count >= 0", name="download_count_nonneg"),)

    release_id: int = Field(foreign_key="release.id", primary_key=True)
    day: date = Field(primary_key=True)
    count: int = 0


class DownloadClient(SQLModel, table=True):
    """Who downloaded a release on a day: one row per `(release, day, client)`, so a client is
    counted once a day however often it downloads (the counts rank packages and must not be
    inflated by one client in a loop). `client` is the sha256 of the caller's identity (its
    account, else its address), so no address is stored. Rows of past days are pruned."""

    __tablename__ = "download_client"
    __table_args__ = (CheckConstraint("length(client) = 64", name="download_client_len"),)

    release_id: int = Field(foreign_key="release.id", primary_key=True)
    day: date = Field(primary_key=True, index=True)
    client: str = Field(primary_key=True, max_length=64)


class AccountDownload(SQLModel, table=True):
    """An account downloaded a release (with its token): one row per `(account, release)`, kept
    for good. It is what makes a review verified."""

    __tablename__ = "account_download"

    publisher_id: int = Field(foreign_key="publisher.id", primary_key=True)
    release_id: int = Field(foreign_key="release.id", primary_key=True, index=True)
    first_at: datetime = Field(default_factory=utcnow)


class Revocation(SQLModel, table=True):
    """A signed statement that a release must not run anywhere. `statement` is the exact JSON
    that was signed (`registry.retire.statement_bytes`); `signer` says whose key signed it: the
    publisher's (`key_id` is theirs) or the registry's own (an admin revocation). The id orders
    the revocation list; rows are never changed or removed."""

    __table_args__ = (
        CheckConstraint("signer IN ('publisher', 'registry')", name="revocation_signer"),
    )

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="release.id", unique=True)
    reason: str = Field(max_length=1000)
    statement: str = Field(sa_column=Column(Text, nullable=False))
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_id: str = Field(max_length=32)
    signer: str = Field(max_length=16)
    revoked_by: int = Field(foreign_key="publisher.id")
    created_at: datetime = Field(default_factory=utcnow)

class LogLeaf(SQLModel, table=True):
    """Leaf `idx` of the public release log (`registry.log_store`): one accepted release, the
    fields of its entry (`registry.translog.LogEntry`) and the entry's leaf hash. One leaf per
    release and per (name, version); leaves are only ever added, in index order."""

    __tablename__ = "log_leaf"
    __table_args__ = (
        UniqueConstraint("name", "version", name="log_leaf_release"),
        CheckConstraint("length(leaf_hash) = 64", name="log_leaf_hash_len"),
        CheckConstraint("idx >= 0", name="log_leaf_idx_nonneg"),
    )

    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    leaf_hash: str = Field(max_length=64)
    release_id: int = Field(foreign_key="release.id", unique=True)
    name: str = Field(max_length=130)
    version: str = Field(max_length=64)
    digest: str = Field(max_length=64)
    key_id: str = Field(max_length=32)
    record: str | None = Field(default=None, max_length=64)


class LogNode(SQLModel, table=True):
    """A completed perfect subtree of the release log: `2**level` leaves from leaf
    `idx * 2**level` (levels >= 1; level 0 is `LogLeaf`). Written once, when its last leaf is."""

    __tablename__ = "log_node"
    __table_args__ = (CheckConstraint("length(hash) = 64", name="log_node_hash_len"),)

    level: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: str = Field(max_length=64)


class LogHead(SQLModel, table=True):
    """The signed tree head of every size the log has had (one per append): the latest is the
    row of the largest size; older ones answer consistency proofs."""

    __tablename__ = "log_head"
    __table_args__ = (CheckConstraint("length(root_hash) = 64", name="log_head_root_len"),)

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: str = Field(max_length=64)
    timestamp_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    key_id: str = Field(max_length=32)
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class PackageChange(SQLModel, table=True):
    """The change counter of a package: `seq` moves in the transaction of every write to the
    package, its releases or its reviews. Database triggers write it (migration 0010), so no
    code path can forget it; PostgreSQL also sends the name on the `agentfactory_package`
    channel, delivered on commit. API processes read it to drop their cached answers for the
    package (`marketplace.server.invalidation`)."""

    __tablename__ = "package_change"

    name: str = Field(primary_key=True, max_length=130)  # the package's normalized name
    seq: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))


class RateBucket(SQLModel, table=True):
    """One token bucket of a rate limit shared by every API process: `tokens` left at `stamp`
    (seconds since the epoch). Updated in one atomic statement that refills and spends
    (`marketplace.server.ratelimit.DatabaseLimiter`)."""

    __tablename__ = "rate_bucket"
    __table_args__ = (CheckConstraint("tokens >= 0", name="rate_bucket_tokens_nonneg"),)

    action: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=200)
    tokens: float
    stamp: float

AUDIT_OUTCOME_SQL = "outcome = 'ok' OR outcome LIKE 'refused:%' OR outcome LIKE 'failed:%'"


class AuditEvent(SQLModel, table=True):
    """One thing that happened: who did what, to which object, when, how it ended, and the
    correlation id of the request or run it belongs to. Append-only: the code has no path that
    changes or removes a row, and the database refuses UPDATE and DELETE with a trigger
    (migration 0006). `actor_id` and `owner_id` (the account that did it, the account whose
    object it was) decide who may read it; neither is a foreign key, so the trail outlives
    whatever it names. `registry.audit` writes and reads it."""

    __tablename__ = "audit_event"
    __table_args__ = (
        CheckConstraint(AUDIT_OUTCOME_SQL, name="audit_event_outcome"),
        CheckConstraint("length(detail_json) <= 4096", name="audit_event_detail_len"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=64)
    actor_id: int | None = Field(default=None, index=True)
    action: str = Field(max_length=32, index=True)
    object_type: str = Field(max_length=16)
    object_id: str = Field(max_length=200, index=True)
    owner_id: int | None = Field(default=None, index=True)
    outcome: str = Field(max_length=80)
    correlation_id: str | None = Field(default=None, max_length=128, index=True)
    detail_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))


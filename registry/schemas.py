"""Public records returned by the registry facade (never ORM rows bound to a session).

Bytes fields (signatures, public keys) are `bytes` in Python and base64 in JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCOPES = frozenset({"publish", "review", "run", "admin"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's publisher, its namespaces and the token's scopes."""

    publisher_id: int
    name: str
    namespaces: frozenset[str]  # normalized
    scopes: frozenset[str]
    token_id: str


@dataclass(frozen=True)
class WebSessionPublic:
    """A signed-in browser's server-side session: who it acts as (the principal of the token it
    was opened with), the secret its forms must echo, and when it ends."""

    principal: Principal
    csrf_secret: str
    expires_at: datetime


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")


class PublisherPublic(_Public):
    id: int
    name: str
    namespaces: list[str]
    created_at: datetime


class TokenPublic(_Public):
    token_id: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class KeyPublic(_Public):
    key_id: str
    publisher: str
    public_key: bytes
    signed_by: str | None
    rotation_signature: bytes | None = None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class ReleasePublic(_Public):
    name: str
    version: str
    prerelease: bool
    digest: str
    size: int
    signature: bytes
    key_id: str
    uploaded_at: datetime
    yanked: bool
    yank_reason: str | None
    requires: dict[str, str] = Field(default_factory=dict)
    permissions: list[str] = Field(default_factory=list)
    vetting_status: str = "not-run"
    vetting: dict[str, Any] | None = None
    deprecated_reason: str | None = None
    deprecated_successor: str | None = None
    revoked: bool = False
    revoke_reason: str | None = None


class VersionRating(_Public):
    """The verified ratings of one version."""

    version: str
    count: int
    mean: float | None


class RatingSummary(_Public):
    """Verified ratings of every version (`count`, `mean`, `histogram`), the score search ranks
    by (`bayesian`, pulled toward `prior_mean` as if it had `prior_weight` more ratings), the
    latest version's own ratings, and `explanation`: that score in words."""

    count: int
    mean: float | None
    bayesian: float
    histogram: dict[int, int]
    prior_mean: float = 3.0
    prior_weight: float = 5.0
    latest: VersionRating | None = None
    unverified: int = 0
    explanation: str = ""


class PackageSummary(_Public):
    name: str
    summary: str
    publisher: str
    latest_version: str | None
    keywords: list[str]
    capabilities: list[str]
    tools: list[str]
    templates: list[str]
    downloads: int
    rating_count: int
    rating_mean: float | None
    rating_bayesian: float
    updated_at: datetime


class PackageDetail(PackageSummary):
    description: str
    license: str
    homepage: str | None
    readme: str
    rating: RatingSummary
    versions: list[str]
    created_at: datetime


class SearchPage(_Public):
    items: list[PackageSummary]
    total: int
    page: int
    per_page: int


class ReviewPublic(_Public):
    id: int
    package: str
    reviewer: str
    stars: int
    title: str
    body: str
    version: str | None
    created_at: datetime
    updated_at: datetime
    reply: str | None
    reply_at: datetime | None
    flag_count: int
    verified: bool = False


class ReviewPage(_Public):
    items: list[ReviewPublic]
    total: int
    page: int
    per_page: int


class WhoAmI(_Public):
    """The caller as its token shows it."""

    publisher: str
    namespaces: list[str]
    token_id: str
    scopes: list[str]


class RetirementEntry(_Public):
    """One retired release in the revocation list. `level` is `deprecated`, `yanked` or
    `revoked`; a revocation carries its signed `statement` (the exact JSON signed), the
    `signature` (base64) and the signing `key_id` and `public_key` (base64), `signer` saying
    whose key it is (`publisher` or `registry`). `latest` is the package's best live version."""

    name: str
    version: str
    digest: str
    level: str
    reason: str
    successor: str | None = None
    latest: str | None = None
    statement: str | None = None
    signature: str | None = None
    key_id: str | None = None
    public_key: str | None = None
    signer: str | None = None


class RevocationList(_Public):
    """The registry's list of retired releases. `serial` is the id of the newest revocation
    (0: none yet), so a client that saw serial N refuses a replayed list below N, which would
    hide a revocation; `issued_at` says how fresh the yank and deprecation entries are."""

    serial: int
    issued_at: datetime
    entries: list[RetirementEntry]


class SignedRevocationList(_Public):
    """`payload`: the canonical JSON of a `RevocationList`; `signature` (base64) by the
    registry's key `key_id` (`public_key`, base64)."""

    payload: str
    signature: str
    key_id: str
    public_key: str


def split_list(value: str) -> list[str]:
    """`"|a|b|"` -> `["a", "b"]` (the storage form of list-valued search fields)."""
    return [part for part in value.split("|") if part]


def join_list(values: Any) -> str:
    items = [str(v).replace("|", "") for v in values if str(v).replace("|", "")]
    return "|" + "|".join(items) + "|" if items else ""

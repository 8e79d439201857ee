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


class RatingSummary(_Public):
    count: int
    mean: float | None
    bayesian: float
    histogram: dict[int, int]


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


class ReviewPage(_Public):
    items: list[ReviewPublic]
    total: int
    page: int
    per_page: int


def split_list(value: str) -> list[str]:
    """`"|a|b|"` -> `["a", "b"]` (the storage form of list-valued search fields)."""
    return [part for part in value.split("|") if part]


def join_list(values: Any) -> str:
    items = [str(v).replace("|", "") for v in values if str(v).replace("|", "")]
    return "|" + "|".join(items) + "|" if items else ""

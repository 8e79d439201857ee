"""Typed records the client reads from the registry's JSON API.

They mirror the server's "Public" schemas but are deliberately tolerant (`extra="ignore"`,
defaults for optional fields): a newer server adding a field must not break an older client.
They import only pydantic, so client commands never pull in the server stack.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Publisher(Record):
    name: str
    namespaces: list[str] = Field(default_factory=list)
    email: str | None = None
    packages: list[dict[str, Any]] = Field(default_factory=list)


class Registration(Record):
    publisher: Publisher
    token: str


class TokenInfo(Record):
    id: str | int
    token: str
    scopes: list[str] = Field(default_factory=list)


class KeyInfo(Record):
    key_id: str
    publisher: str = ""
    public_key: str  # base64 of the raw Ed25519 public key
    created_at: str | None = None
    revoked: bool = False
    signed_by: str | None = None
    rotation_signature: str | None = None


class Vetting(Record):
    passed: bool | None = None
    summary: str = ""


class Release(Record):
    name: str = ""
    version: str
    digest: str
    size: int = 0
    signature: str = ""  # base64
    key_id: str = ""
    uploaded_at: str | None = None
    yanked: bool = False
    yank_reason: str | None = None
    requires: dict[str, str] = Field(default_factory=dict)
    vetting_status: str = "not-run"  # "passed", "unvetted" (no examples) or "not-run"
    vetting: Any = None
    deprecated_reason: str | None = None
    deprecated_successor: str | None = None
    revoked: bool = False
    revoke_reason: str | None = None


class VersionRating(Record):
    version: str
    count: int = 0
    mean: float | None = None


class RatingSummary(Record):
    count: int = 0
    mean: float | None = None
    bayesian: float | None = None
    histogram: dict[str, int] = Field(default_factory=dict)
    latest: VersionRating | None = None
    unverified: int = 0
    explanation: str = ""


class PackageSummary(Record):
    name: str
    summary: str = ""
    publisher: str | Publisher | None = None
    latest_version: str | None = None
    downloads: int = 0
    keywords: list[str] = Field(default_factory=list)
    capabilities: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    rating_count: int = 0
    rating_mean: float | None = None
    rating_bayesian: float | None = None


class PackageDetail(PackageSummary):
    description: str = ""
    license: str = ""
    homepage: str | None = None
    readme: str = ""
    rating: RatingSummary = Field(default_factory=RatingSummary)
    versions: list[Any] = Field(default_factory=list)

    @property
    def publisher_name(self) -> str:
        if isinstance(self.publisher, Publisher):
            return self.publisher.name
        return self.publisher or ""


class Review(Record):
    id: int | str
    package: str = ""
    reviewer: str = ""
    stars: int
    title: str = ""
    body: str = ""
    version: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    reply: str | None = None
    reply_at: str | None = None
    flag_count: int = 0
    verified: bool = False


class WhoAmI(Record):
    """The account and scopes of the token in use."""

    publisher: str
    namespaces: list[str] = Field(default_factory=list)
    token_id: str = ""
    scopes: list[str] = Field(default_factory=list)


class Page(Record, Generic[T]):
    items: list[T]
    total: int = 0
    page: int = 1
    per_page: int = 20


class RunError(Record):
    code: str
    message: str = ""
    detail: dict[str, Any] | None = None


class RunUsage(Record):
    duration_ms: float | None = None
    fuel_used: int | None = None
    memory_peak_bytes: int | None = None


class Run(Record):
    """A run on the marketplace (`/api/v1/runs`): its state, then its result or typed error."""

    id: str
    status: str
    agent: str
    agent_name: str = ""
    version: str | None = None
    result: dict[str, Any] | None = None
    error: RunError | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    usage: RunUsage = Field(default_factory=RunUsage)
    attempt: int = 0

    @property
    def final(self) -> bool:
        return self.status not in ("queued", "running")


class RunEvent(Record):
    """One Server-Sent Event of a run's progress."""

    id: int
    kind: str
    data: dict[str, Any] = Field(default_factory=dict)


class AuditEvent(Record):
    """One event of the audit trail (`/api/v1/audit`): who did what to which object, and how it
    ended (`ok`, `refused:<code>`, `failed:<code>`)."""

    id: int
    at: str
    actor: str
    action: str
    object_type: str
    object_id: str
    outcome: str
    correlation_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Download(Record):
    """A downloaded archive with what the server claimed and what the client measured."""

    name: str
    version: str
    data: bytes
    sha256: str  # computed while streaming
    claimed_digest: str | None = None
    signature: str | None = None  # base64, from the response header
    key_id: str | None = None


def publisher_of(value: str | Publisher | None) -> str:
    if isinstance(value, Publisher):
        return value.name
    return value or ""

"""View models of the web pages: typed records built from the registry's public records.

Invariants: nothing here returns markup except `readme_html` (built by `markdown.render_markdown`,
which escapes first); every other string reaches a template as plain text and is escaped by
Jinja's autoescape. Builders do no I/O of their own beyond the registry calls they are handed,
and each page makes a fixed number of registry calls whatever the data size (no N+1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

from markupsafe import Markup

from registry.errors import RegistryError
from registry.schemas import (
    KeyPublic,
    PackageDetail,
    PackageSummary,
    RatingSummary,
    ReleasePublic,
    ReviewPage,
)
from registry.signing import verify_release

SORT_CHOICES: tuple[tuple[str, str], ...] = (
    ("relevance", "Relevance"),
    ("rating", "Top rated"),
    ("downloads", "Most downloaded"),
    ("recent", "Recently updated"),
)
SORTS = frozenset(value for value, _ in SORT_CHOICES)


def package_url(name: str) -> str:
    """`/packages/ns/name`, each part percent-encoded (names are restricted, but never trust)."""
    namespace, _, short = name.partition("/")
    return f"/packages/{quote(namespace, safe='')}/{quote(short, safe='')}"


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`1 download`, `2 downloads`, `1,234 downloads`; irregular plurals are passed in."""
    word = singular if count == 1 else (plural_form or f"{singular}s")
    return f"{count:,} {word}"


def star_glyphs(value: float) -> str:
    full = max(0, min(5, round(value)))
    return "★" * full + "☆" * (5 - full)


@dataclass(frozen=True)
class HomeSection:
    key: str  # also the sort order of its "more" link
    title: str
    items: list[PackageSummary]


@dataclass(frozen=True)
class Pages:
    """Pagination links for a list of `total` items shown `per_page` at a time."""

    page: int
    count: int
    prev_url: str | None
    next_url: str | None

    @classmethod
    def build(
        cls,
        path: str,
        params: dict[str, Any],
        page: int,
        per_page: int,
        total: int,
        fragment: str = "",
    ) -> Pages:
        count = max(1, -(-total // per_page))

        def url(n: int) -> str:
            query = {k: v for k, v in params.items() if v not in (None, "")}
            if n > 1:
                query["page"] = n
            encoded = urlencode(query)
            return path + (f"?{encoded}" if encoded else "") + fragment

        return cls(
            page=page,
            count=count,
            prev_url=url(page - 1) if page > 1 else None,
            next_url=url(page + 1) if page < count else None,
        )


@dataclass(frozen=True)
class HistogramRow:
    stars: int
    count: int
    total: int


def histogram_rows(rating: RatingSummary) -> list[HistogramRow]:
    counts = {int(k): v for k, v in rating.histogram.items()}
    return [HistogramRow(s, counts.get(s, 0), rating.count) for s in (5, 4, 3, 2, 1)]


SignatureStatus = Literal["verified", "invalid", "revoked", "unknown"]
_SIGNATURE_LABELS: dict[SignatureStatus, str] = {
    "verified": "Signature verified",
    "invalid": "Signature does NOT verify",
    "revoked": "Signed with a revoked key",
    "unknown": "Signing key not found",
}


@dataclass(frozen=True)
class SignatureView:
    status: SignatureStatus
    key_id: str | None
    fingerprint: str | None

    @property
    def label(self) -> str:
        return _SIGNATURE_LABELS[self.status]


def fingerprint(public_key: bytes) -> str:
    """SHA-256 of the raw public key in groups of four hex digits (what people compare aloud)."""
    digest = hashlib.sha256(public_key).hexdigest()
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def signature_view(release: ReleasePublic | None, keys: list[KeyPublic]) -> SignatureView:
    """Re-verify the latest release's signature here, so the page never just repeats a flag."""
    if release is None:
        return SignatureView("unknown", None, None)
    key = next((k for k in keys if k.key_id == release.key_id), None)
    if key is None:
        return SignatureView("unknown", release.key_id, None)
    print_ = fingerprint(key.public_key)
    try:
        verify_release(
            key.public_key, release.signature, release.digest, release.name, release.version
        )
    except RegistryError:
        return SignatureView("invalid", key.key_id, print_)
    if key.revoked:
        return SignatureView("revoked", key.key_id, print_)
    return SignatureView("verified", key.key_id, print_)


@dataclass(frozen=True)
class VettingView:
    """What the sandbox found when a release was published (`registry` stores the report)."""

    status: str  # "passed" or "unvetted" (no examples); failing packages are never published
    examples_passed: int
    examples_total: int
    fuel_used: int | None
    memory_bytes: int | None
    duration_ms: float | None


def vetting_view(release: ReleasePublic | None) -> VettingView | None:
    """The release's vetting summary; None when the registry did not vet it (published before
    vetting existed, or by a registry running without a sandbox)."""
    if release is None or release.vetting is None:
        return None
    totals = release.vetting.get("totals", {})
    return VettingView(
        status=release.vetting_status,
        examples_passed=int(totals.get("passed", 0)),
        examples_total=int(totals.get("examples", 0)),
        fuel_used=totals.get("fuel_used"),
        memory_bytes=totals.get("memory_peak_bytes"),
        duration_ms=totals.get("duration_ms"),
    )


@dataclass(frozen=True)
class PackagePage:
    pkg: PackageDetail
    readme_html: Markup
    install_command: str
    releases: list[ReleasePublic]
    permissions: list[str]
    signature: SignatureView
    vetting: VettingView | None
    histogram: list[HistogramRow]
    reviews: ReviewPage  # verified reviews: they make the rating
    unverified: ReviewPage  # the first page of the others, shown apart
    review_pages: Pages


def latest_release(pkg: PackageDetail, releases: list[ReleasePublic]) -> ReleasePublic | None:
    for release in releases:
        if release.version == pkg.latest_version:
            return release
    live = [r for r in releases if not r.yanked] or releases
    return live[-1] if live else None

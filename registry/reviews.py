"""Ratings and reviews.

One review per user per package (the database enforces it); writing again replaces it. A review
is about one release: the version the author names, else the newest version they downloaded,
else the package's latest. It is **verified** when its author's account downloaded that very
release with its token (`account_download`, recorded by `Registry.download`); only verified
reviews make the rating. Unverified ones are kept and listed apart (`verified=False`), never
refused: someone who installed from a mirror, a colleague's lockfile or an offline bundle may
still speak, but cannot move the score. docs/trust.md says why.

The package's aggregates (count, sum, 1-5 histogram, verified reviews only) are recomputed from
the review rows inside the same write transaction that changed them, after locking the package
row (`FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already serializes writers). So the
aggregates are exact however many writers run at once: they are never a read-modify-write of a
stale counter. Publishers may not rate their own packages; only the package's publisher may
reply. `rating_summary` adds the latest version's own rating and explains the ranking score in
words (`explain`).
"""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from registry.accounts import require_scope
from registry.config import RegistryConfig
from registry.errors import Conflict, InvalidReview, NotFound, PermissionDenied
from registry.models import (
    AccountDownload,
    Package,
    Publisher,
    Release,
    Review,
    ReviewFlag,
    utcnow,
)
from registry.names import normalize_name
from registry.resolve import find_package, parse_version
from registry.schemas import (
    Principal,
    RatingSummary,
    ReviewPage,
    ReviewPublic,
    VersionRating,
)
from registry.search import bayesian, global_mean


def _lock_package(session: Session, name: str) -> Package:
    row = session.exec(
        select(Package)
        .where(Package.normalized_name == normalize_name(name))
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound("package", name)
    return row


def recompute_aggregates(session: Session, package: Package) -> None:
    """Set the package's review counters from its review rows (caller holds the lock)."""
    session.flush()
    counts = dict(
        session.execute(
            select(Review.stars, func.count())
            .where(Review.package_id == package.id, col(Review.verified).is_(True))
            .group_by(col(Review.stars))
        ).all()
    )
    histogram = {stars: int(counts.get(stars, 0)) for stars in range(1, 6)}
    package.review_count = sum(histogram.values())
    package.stars_sum = sum(stars * n for stars, n in histogram.items())
    package.stars_1, package.stars_2, package.stars_3 = histogram[1], histogram[2], histogram[3]
    package.stars_4, package.stars_5 = histogram[4], histogram[5]
    session.add(package)


def review_public(session: Session, review: Review, package: str) -> ReviewPublic:
    reviewer = session.get(Publisher, review.reviewer_id)
    assert review.id is not None and reviewer is not None
    return ReviewPublic(
        id=review.id, package=package, reviewer=reviewer.name, stars=review.stars,
        title=review.title, body=review.body, version=review.version,
        created_at=review.created_at, updated_at=review.updated_at, reply=review.reply,
        reply_at=review.reply_at, flag_count=review.flag_count, verified=review.verified,
    )


def _reviewed_release(
    session: Session, package: Package, reviewer_id: int, version: str | None
) -> Release:
    """The release a review is about: `version`, else the newest the reviewer downloaded,
    else the package's latest (`InvalidReview` for a version the package does not have)."""
    releases = session.exec(select(Release).where(Release.package_id == package.id)).all()
    if version is not None:
        for release in releases:
            if release.version == version:
                return release
        raise InvalidReview(f"{package.name} has no version {version!r}")
    downloaded = set(session.exec(
        select(AccountDownload.release_id).where(
            AccountDownload.publisher_id == reviewer_id,
            col(AccountDownload.release_id).in_([r.id for r in releases]),
        )
    ).all())
    mine = [r for r in releases if r.id in downloaded]
    if mine:
        return max(mine, key=lambda r: parse_version(r.version))
    latest = [r for r in releases if r.version == package.latest_version] or releases
    if not latest:
        raise InvalidReview(f"{package.name} has no release to review")
    return max(latest, key=lambda r: parse_version(r.version))


def downloaded(session: Session, publisher_id: int, release_id: int) -> bool:
    return session.get(AccountDownload, (publisher_id, release_id)) is not None


def rate(
    session: Session, principal: Principal, name: str, stars: int, title: str, body: str,
    version: str | None, config: RegistryConfig,
) -> ReviewPublic:
    require_scope(principal, "review")
    if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
        raise InvalidReview(f"stars must be a whole number from 1 to 5, not {stars!r}")
    if len(title) > config.max_review_title or len(body) > config.max_review_body:
        raise InvalidReview(
            f"title and body are limited to {config.max_review_title} and "
            f"{config.max_review_body} characters"
        )
    package = _lock_package(session, name)
    if package.publisher_id == principal.publisher_id:
        raise PermissionDenied("publishers cannot rate their own packages")
    release = _reviewed_release(session, package, principal.publisher_id, version)
    assert release.id is not None
    review = session.exec(
        select(Review).where(
            Review.package_id == package.id, Review.reviewer_id == principal.publisher_id
        )
    ).first()
    now = utcnow()
    if review is None:
        assert package.id is not None
        review = Review(package_id=package.id, reviewer_id=principal.publisher_id, stars=stars,
                        created_at=now)
    review.stars, review.title, review.body = stars, title, body
    review.version, review.release_id, review.updated_at = release.version, release.id, now
    review.verified = downloaded(session, principal.publisher_id, release.id)
    session.add(review)
    recompute_aggregates(session, package)
    return review_public(session, review, package.name)


def delete_review(session: Session, principal: Principal, name: str) -> None:
    require_scope(principal, "review")
    package = _lock_package(session, name)
    review = session.exec(
        select(Review).where(
            Review.package_id == package.id, Review.reviewer_id == principal.publisher_id
        )
    ).first()
    if review is None:
        raise NotFound("review", f"{principal.name} on {package.name}")
    session.delete(review)
    recompute_aggregates(session, package)


def _review_and_package(
    session: Session, review_id: int, *, lock: bool = False
) -> tuple[Review, Package]:
    review = session.get(Review, review_id, with_for_update=lock)
    if review is None:
        raise NotFound("review", str(review_id))
    package = session.get(Package, review.package_id)
    assert package is not None
    return review, package


def reply(
    session: Session, principal: Principal, review_id: int, text: str, config: RegistryConfig
) -> ReviewPublic:
    require_scope(principal, "review")
    review, package = _review_and_package(session, review_id)
    if package.publisher_id != principal.publisher_id:
        raise PermissionDenied(f"only the publisher of {package.name} may reply")
    if not text.strip() or len(text) > config.max_review_body:
        raise InvalidReview("a reply needs some text, within the body limit")
    review.reply, review.reply_at = text, utcnow()
    session.add(review)
    return review_public(session, review, package.name)


def flag(session: Session, principal: Principal, review_id: int, reason: str) -> ReviewPublic:
    require_scope(principal, "review")
    # Locked: flag_count is recounted below, and two flaggers must not both count one flag.
    review, package = _review_and_package(session, review_id, lock=True)
    already = session.exec(
        select(ReviewFlag.id).where(
            ReviewFlag.review_id == review_id, ReviewFlag.flagger_id == principal.publisher_id
        )
    ).first()
    if already is None:
        session.add(ReviewFlag(review_id=review_id, flagger_id=principal.publisher_id,
                               reason=reason[:1000]))
        try:
            session.flush()
        except IntegrityError:
            raise Conflict("this review is already flagged by you") from None
        review.flag_count = session.execute(
            select(func.count()).where(col(ReviewFlag.review_id) == review_id)
        ).scalar_one()
        session.add(review)
    return review_public(session, review, package.name)


def list_reviews(
    session: Session, name: str, page: int, per_page: int, verified: bool | None = None
) -> ReviewPage:
    """A page of the package's reviews, newest first; `verified` keeps only the verified
    (True) or the unverified (False) ones."""
    package = find_package(session, name)
    page, per_page = max(1, page), max(1, min(100, per_page))
    where = [col(Review.package_id) == package.id]
    if verified is not None:
        where.append(col(Review.verified).is_(verified))
    total = session.execute(select(func.count()).where(*where)).scalar_one()
    rows = session.exec(
        select(Review)
        .where(*where)
        .order_by(col(Review.updated_at).desc(), col(Review.id).desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return ReviewPage(
        items=[review_public(session, r, package.name) for r in rows], total=total, page=page,
        per_page=per_page,
    )


def rating_summary(session: Session, package: Package, prior_weight: float) -> RatingSummary:
    histogram = {1: package.stars_1, 2: package.stars_2, 3: package.stars_3,
                 4: package.stars_4, 5: package.stars_5}
    count = package.review_count
    mean = package.stars_sum / count if count else None
    prior = global_mean(session)
    score = bayesian(package.stars_sum, count, prior, prior_weight)
    return RatingSummary(
        count=count, mean=mean, bayesian=score, histogram=histogram, prior_mean=prior,
        prior_weight=prior_weight, latest=_latest_rating(session, package),
        unverified=_unverified(session, package),
        explanation=explain(count, mean, score, prior, prior_weight),
    )


def _latest_rating(session: Session, package: Package) -> VersionRating | None:
    if package.latest_version is None:
        return None
    count, total = session.execute(
        select(func.count(), func.coalesce(func.sum(Review.stars), 0))
        .select_from(Review)
        .join(Release, col(Release.id) == col(Review.release_id))
        .where(Review.package_id == package.id, col(Review.verified).is_(True),
               Release.version == package.latest_version)
    ).one()
    return VersionRating(version=package.latest_version, count=int(count),
                         mean=float(total) / count if count else None)


def _unverified(session: Session, package: Package) -> int:
    return int(session.execute(
        select(func.count()).where(
            col(Review.package_id) == package.id, col(Review.verified).is_(False)
        )
    ).scalar_one())


def _number(value: float) -> str:
    """`5` for 5.0, `2.5` for 2.5: weights read as counts of ratings."""
    return f"{value:g}"


def explain(count: int, mean: float | None, score: float, prior: float, weight: float) -> str:
    """The ranking score in words: what it is made of and why it differs from the mean."""
    if not count or mean is None:
        return ("no verified ratings yet: unrated packages are listed after every rated one "
                "under top rated")
    ratings = "rating" if count == 1 else "ratings"
    return (
        f"{mean:.1f} from {count} {ratings}; ranked as {score:.1f} because packages with few "
        f"ratings are pulled toward the site average {prior:.1f} as if they had "
        f"{_number(weight)} more ratings of {prior:.1f}"
    )

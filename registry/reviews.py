"""Ratings and reviews.

One review per user per package (the database enforces it); writing again replaces it. The
package's aggregates (count, sum, 1-5 histogram) are recomputed from the review rows inside the
same write transaction that changed them, after locking the package row (`FOR UPDATE` on
PostgreSQL; SQLite's `BEGIN IMMEDIATE` already serializes writers). So the aggregates are exact
however many writers run at once: they are never a read-modify-write of a stale counter.
Publishers may not rate their own packages; only the package's publisher may reply.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from registry.accounts import require_scope
from registry.config import RegistryConfig
from registry.errors import Conflict, InvalidReview, NotFound, PermissionDenied
from registry.models import Package, Publisher, Release, Review, ReviewFlag, utcnow
from registry.names import normalize_name
from registry.resolve import find_package
from registry.schemas import Principal, RatingSummary, ReviewPage, ReviewPublic
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
            .where(Review.package_id == package.id)
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
        reply_at=review.reply_at, flag_count=review.flag_count,
    )


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
    if version is not None:
        known = session.exec(
            select(Release.id).where(Release.package_id == package.id, Release.version == version)
        ).first()
        if known is None:
            raise InvalidReview(f"{package.name} has no version {version!r}")
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
    review.version, review.updated_at = version, now
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


def list_reviews(session: Session, name: str, page: int, per_page: int) -> ReviewPage:
    package = find_package(session, name)
    page, per_page = max(1, page), max(1, min(100, per_page))
    total = session.execute(
        select(func.count()).where(col(Review.package_id) == package.id)
    ).scalar_one()
    rows = session.exec(
        select(Review)
        .where(Review.package_id == package.id)
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
    return RatingSummary(
        count=count, mean=package.stars_sum / count if count else None,
        bayesian=bayesian(package.stars_sum, count, global_mean(session), prior_weight),
        histogram=histogram,
    )

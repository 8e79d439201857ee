from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from registry import Registry, SigningKey
from registry.db import write_session
from registry.errors import (
    AuthenticationError,
    Conflict,
    InvalidReview,
    NotFound,
    PermissionDenied,
    ReservedName,
    RevokedKey,
    SignatureMismatch,
    UnknownKey,
)
from registry.models import Review
from tests.registry.factories import TestPublisher, download_as, make_publisher, publish


@pytest.fixture
def published(registry: Registry, acme: TestPublisher) -> Registry:
    publish(registry, acme)
    return registry


def test_rate_creates_then_replaces_ones_own_review(published: Registry) -> None:
    bob = make_publisher(published, "bob", None)
    download_as(published, bob)
    first = published.rate(bob.principal, "acme/summarizer", 2, "meh", "slow", version="1.0.0")
    second = published.rate(bob.principal, "acme/summarizer", 4, "better")
    # Without a version, the review is about the newest version its author downloaded.
    assert first.id == second.id and second.stars == 4 and second.version == "1.0.0"
    assert second.verified
    summary = published.rating("acme/summarizer")
    assert (summary.count, summary.mean) == (1, 4.0)
    assert summary.histogram == {1: 0, 2: 0, 3: 0, 4: 1, 5: 0}
    published.delete_review(bob.principal, "acme/summarizer")
    assert published.rating("acme/summarizer").count == 0
    with pytest.raises(NotFound):
        published.delete_review(bob.principal, "acme/summarizer")


@pytest.mark.parametrize("stars", [0, 6, True, 3.5])
def test_stars_out_of_range_are_refused(published: Registry, stars: object) -> None:
    bob = make_publisher(published, "bob", None)
    with pytest.raises(InvalidReview):
        published.rate(bob.principal, "acme/summarizer", stars)  # type: ignore[arg-type]


def test_database_enforces_stars_and_one_review_per_user(
    published: Registry, acme: TestPublisher
) -> None:
    bob = make_publisher(published, "bob", None)
    published.rate(bob.principal, "acme/summarizer", 3)
    for stars, reviewer in [(9, acme.principal.publisher_id), (3, bob.principal.publisher_id)]:
        with pytest.raises(IntegrityError), Session(published.engine) as s:
            s.add(Review(package_id=1, reviewer_id=reviewer, stars=stars))
            s.commit()


def test_unknown_version_and_self_review_are_refused(
    published: Registry, acme: TestPublisher
) -> None:
    bob = make_publisher(published, "bob", None)
    with pytest.raises(InvalidReview, match=r"9\.9"):
        published.rate(bob.principal, "acme/summarizer", 5, version="9.9")
    with pytest.raises(PermissionDenied, match="own"):
        published.rate(acme.principal, "acme/summarizer", 5)


def test_reply_is_for_the_publisher_and_flags_count_once_per_user(
    published: Registry, acme: TestPublisher
) -> None:
    bob, eve = make_publisher(published, "bob", None), make_publisher(published, "eve", None)
    review = published.rate(bob.principal, "acme/summarizer", 1, "bad", "spam spam")
    with pytest.raises(PermissionDenied):
        published.reply(eve.principal, review.id, "I am not the publisher")
    replied = published.reply(acme.principal, review.id, "Fixed in 1.1")
    assert replied.reply == "Fixed in 1.1"
    published.flag(eve.principal, review.id, "spam")
    flagged = published.flag(eve.principal, review.id, "spam again")
    assert flagged.flag_count == 1
    assert published.flag(acme.principal, review.id, "abuse").flag_count == 2
    page = published.reviews("acme/summarizer")
    assert page.total == 1 and page.items[0].reply == "Fixed in 1.1"
    published.delete_review(bob.principal, "acme/summarizer")  # flags go with it (cascade)


def test_aggregates_stay_exact_under_many_concurrent_writers(
    published: Registry, tmp_path: Path
) -> None:
    users = [make_publisher(published, f"user{i}", None, key=False) for i in range(24)]
    for user in users:
        download_as(published, user)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(chunk: list[TestPublisher]) -> None:
        try:
            barrier.wait()
            for round_ in range(3):  # create, then replace twice
                for i, user in enumerate(chunk):
                    published.rate(user.principal, "acme/summarizer", 1 + (i + round_) % 5)
            published.delete_review(chunk[0].principal, "acme/summarizer")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(users[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    page = published.reviews("acme/summarizer", per_page=100)
    stars = [r.stars for r in page.items]
    summary = published.rating("acme/summarizer")
    assert summary.count == len(stars) == 24 - 8
    assert summary.mean == pytest.approx(sum(stars) / len(stars))
    assert summary.histogram == {s: stars.count(s) for s in range(1, 6)}


def test_concurrent_flags_are_all_counted(published: Registry) -> None:
    author = make_publisher(published, "author", None, key=False)
    review = published.rate(author.principal, "acme/summarizer", 1, "bad")
    flaggers = [make_publisher(published, f"flagger{i}", None, key=False) for i in range(8)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(user: TestPublisher) -> None:
        try:
            barrier.wait()
            published.flag(user.principal, review.id, "spam")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(u,)) for u in flaggers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert published.reviews("acme/summarizer").items[0].flag_count == 8


def test_tokens_scopes_and_revocation(registry: Registry, acme: TestPublisher) -> None:
    assert acme.principal.scopes == {"publish", "review", "run"}
    assert acme.principal.namespaces == {"acme"}
    review_token = registry.create_token(acme.principal, {"review"})
    principal = registry.authenticate(review_token)
    with pytest.raises(PermissionDenied):
        registry.create_token(principal, {"publish"})
    with pytest.raises(PermissionDenied):
        registry.create_token(acme.principal, {"root"})
    registry.revoke_token(acme.principal, principal.token_id)
    with pytest.raises(AuthenticationError):
        registry.authenticate(review_token)
    with pytest.raises(AuthenticationError):
        registry.authenticate("afr_not-a-token")


def test_tokens_are_stored_only_as_hashes(registry: Registry, acme: TestPublisher) -> None:
    if registry.engine.dialect.name == "sqlite":  # the raw file, write-ahead log included
        raw = (Path(str(registry.engine.url.database))).read_bytes()
        wal = Path(str(registry.engine.url.database) + "-wal")
        blob = raw + (wal.read_bytes() if wal.exists() else b"")
    else:  # every value of every table, as text
        with registry.engine.connect() as conn:
            blob = b"".join(
                repr(row).encode()
                for table in SQLModel.metadata.sorted_tables
                for row in conn.execute(select(table)).all()
            )
        assert acme.principal.name.encode() in blob  # the dump does see the rows
    assert acme.token.encode() not in blob


def test_names_and_namespaces_are_unique_and_not_reserved(registry: Registry) -> None:
    make_publisher(registry, "acme")
    with pytest.raises(Conflict):
        registry.register_publisher("ACME", "other")
    with pytest.raises(Conflict):
        registry.register_publisher("someone", "Acme")
    with pytest.raises(ReservedName):
        registry.register_publisher("someone", "admin")


def test_key_rotation_needs_a_statement_by_a_current_key(
    registry: Registry, acme: TestPublisher
) -> None:
    new = SigningKey.generate()
    with pytest.raises(PermissionDenied):
        registry.add_key(acme.principal, new.public_bytes)
    forged = SigningKey.generate().sign_rotation(new.public_bytes, "acme")
    with pytest.raises(SignatureMismatch):
        registry.add_key(acme.principal, new.public_bytes, forged, acme.key.key_id)
    with pytest.raises(UnknownKey):
        registry.add_key(acme.principal, new.public_bytes, forged, "0" * 32)
    statement = acme.key.sign_rotation(new.public_bytes, "acme")
    added = registry.add_key(acme.principal, new.public_bytes, statement, acme.key.key_id)
    assert added.signed_by == acme.key.key_id
    registry.revoke_key(acme.principal, acme.key.key_id)
    newer = SigningKey.generate()
    with pytest.raises(RevokedKey):
        registry.add_key(acme.principal, newer.public_bytes,
                         acme.key.sign_rotation(newer.public_bytes, "acme"), acme.key.key_id)
    keys = registry.keys("acme")
    assert [k.key_id for k in keys] == [acme.key.key_id, new.key_id]
    assert keys[0].revoked and not keys[1].revoked
    acme.key = new
    assert publish(registry, acme).key_id == new.key_id


def test_write_session_rolls_back_on_error(registry: Registry) -> None:
    with pytest.raises(RuntimeError), write_session(registry.engine) as s:
        s.add(Review(package_id=999, reviewer_id=999, stars=3))
        raise RuntimeError("boom")
    with Session(registry.engine) as s:
        assert s.get(Review, 1) is None


def test_only_reviews_by_downloaders_count(published: Registry, acme: TestPublisher) -> None:
    reader, stranger = make_publisher(published, "reader", None), make_publisher(
        published, "stranger", None)
    download_as(published, reader)
    published.download("acme/summarizer", "1.0.0", client="address:192.0.2.1")  # no account
    counted = published.rate(reader.principal, "acme/summarizer", 4, "works")
    apart = published.rate(stranger.principal, "acme/summarizer", 1, "never tried it")
    assert (counted.verified, apart.verified) == (True, False)
    summary = published.rating("acme/summarizer")
    assert (summary.count, summary.mean, summary.unverified) == (1, 4.0, 1)
    assert summary.latest is not None and (summary.latest.version, summary.latest.count) == (
        "1.0.0", 1)
    assert [r.reviewer for r in published.reviews("acme/summarizer", verified=False).items] == [
        "stranger"]
    assert published.reviews("acme/summarizer", verified=True).total == 1
    # Downloading later and writing again makes the stranger's review count.
    download_as(published, stranger)
    assert published.rate(stranger.principal, "acme/summarizer", 2).verified
    assert published.rating("acme/summarizer").count == 2


def test_ratings_per_version_and_the_explanation(
    published: Registry, acme: TestPublisher
) -> None:
    publish(published, acme, version="1.1.0")
    early, late = make_publisher(published, "early", None), make_publisher(published, "late", None)
    download_as(published, early, version="1.0.0")
    download_as(published, late, version="1.1.0")
    assert published.rate(early.principal, "acme/summarizer", 2).version == "1.0.0"
    assert published.rate(late.principal, "acme/summarizer", 5).version == "1.1.0"
    summary = published.rating("acme/summarizer")
    assert (summary.count, summary.mean) == (2, 3.5)
    assert summary.latest is not None
    assert (summary.latest.version, summary.latest.count, summary.latest.mean) == (
        "1.1.0", 1, 5.0)
    assert summary.explanation == (
        "3.5 from 2 ratings; ranked as 3.5 because packages with few ratings are pulled toward "
        "the site average 3.5 as if they had 5 more ratings of 3.5"
    )
    with pytest.raises(InvalidReview, match=r"9\.9"):
        published.rate(late.principal, "acme/summarizer", 5, version="9.9")

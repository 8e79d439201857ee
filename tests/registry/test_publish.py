"""The publish pipeline: each step on its own, then the whole, all or nothing."""

from __future__ import annotations

import hashlib
import threading

import pytest
from sqlmodel import Session, select

from registry import MemoryBlobStore, Registry, RegistryConfig
from registry.db import make_engine, write_session
from registry.errors import (
    ArchiveError,
    DuplicateDigest,
    DuplicateRelease,
    LookalikeName,
    ManifestError,
    NotFound,
    PermissionDenied,
    ReservedName,
    RevokedKey,
    SignatureMismatch,
    UnknownKey,
)
from registry.models import Release
from registry.publish import (
    STEPS,
    PublishContext,
    run_publish,
    step_authorize,
    step_dedupe,
    step_parse,
    step_store,
    step_validate,
    step_verify,
)
from tests.registry.factories import (
    TestPublisher,
    make_archive,
    make_publisher,
    publish,
    sign,
    unchecked_archive,
)


def context(registry: Registry, pub: TestPublisher, archive: bytes, session: Session,
            signature: bytes = b"", key_id: str | None = None) -> PublishContext:
    return PublishContext(
        session=session, blobs=registry.blobs, config=registry.config,
        principal=pub.principal, archive=archive, signature=signature,
        key_id=key_id or pub.key.key_id,
    )


def test_parse_step_fills_manifest_and_digest(registry: Registry, acme: TestPublisher) -> None:
    archive = make_archive(version="1.0")
    with Session(registry.engine) as s:
        ctx = context(registry, acme, archive, s)
        step_parse(ctx)
    assert ctx.digest == hashlib.sha256(archive).hexdigest()
    assert (ctx.normalized_name, ctx.canonical_version) == ("acme/summarizer", "1")
    with Session(registry.engine) as s, pytest.raises(ArchiveError):
        step_parse(context(registry, acme, b"PK junk", s))


def test_validate_step_refuses_broken_contents(registry: Registry, acme: TestPublisher) -> None:
    archive = unchecked_archive(manifest={"entry": "nope.py:process"})
    with Session(registry.engine) as s:
        ctx = context(registry, acme, archive, s)
        step_parse(ctx)
        with pytest.raises(ManifestError):
            step_validate(ctx)


def test_validate_step_refuses_reserved_names(registry: Registry) -> None:
    pub = make_publisher(registry, "tools")
    with Session(registry.engine) as s:
        ctx = context(registry, pub, make_archive(name="tools/admin"), s)
        step_parse(ctx)
        with pytest.raises(ReservedName):
            step_validate(ctx)


def test_authorize_step_checks_scope_and_namespace(registry: Registry, acme: TestPublisher) -> None:
    other = make_publisher(registry, "zeta")
    with Session(registry.engine) as s:
        ctx = context(registry, other, make_archive(name="acme/summarizer"), s)
        step_parse(ctx)
        step_validate(ctx)
        with pytest.raises(PermissionDenied, match="namespace"):
            step_authorize(ctx)
    review_only = registry.authenticate(registry.create_token(acme.principal, {"review"}))
    with Session(registry.engine) as s:
        ctx = context(registry, acme, make_archive(), s)
        ctx.principal = review_only
        step_parse(ctx)
        with pytest.raises(PermissionDenied, match="publish"):
            step_authorize(ctx)


def test_verify_step(registry: Registry, acme: TestPublisher) -> None:
    archive = make_archive(version="1.0.0")
    cases = [
        (sign(acme, archive, "acme/summarizer", "1.0.1"), acme.key.key_id, SignatureMismatch),
        (sign(acme, archive, "acme/other", "1.0.0"), acme.key.key_id, SignatureMismatch),
        (sign(acme, archive, "acme/summarizer", "1.0.0"), "f" * 32, UnknownKey),
    ]
    for signature, key_id, error in cases:
        with Session(registry.engine) as s:
            ctx = context(registry, acme, archive, s, signature, key_id)
            step_parse(ctx)
            with pytest.raises(error):
                step_verify(ctx)


def test_signature_by_another_publishers_key_is_unknown(
    registry: Registry, acme: TestPublisher
) -> None:
    mallory = make_publisher(registry, "mallory")
    archive = make_archive()
    sig = mallory.key.sign_release(hashlib.sha256(archive).hexdigest(), "acme/summarizer", "1.0.0")
    with pytest.raises(UnknownKey):
        registry.publish(acme.principal, archive, sig, mallory.key.key_id)


def test_dedupe_and_store_steps(registry: Registry, acme: TestPublisher) -> None:
    publish(registry, acme, version="1.0")
    with Session(registry.engine) as s:
        ctx = context(registry, acme, make_archive(version="1.0.0"), s)
        step_parse(ctx)
        step_validate(ctx)
        with pytest.raises(DuplicateRelease):
            step_dedupe(ctx)
    with Session(registry.engine) as s:
        ctx = context(registry, acme, make_archive(version="2.0"), s)
        step_parse(ctx)
        step_validate(ctx)
        step_dedupe(ctx)
        step_store(ctx)
        assert ctx.blob_created and registry.blobs.exists(ctx.digest)


def test_publish_happy_path_and_duplicates(registry: Registry, acme: TestPublisher) -> None:
    release = publish(registry, acme, version="1.0.0")
    assert release.name == "acme/summarizer" and release.key_id == acme.key.key_id
    assert registry.blobs.get(release.digest)
    with pytest.raises(DuplicateRelease) as err:
        publish(registry, acme, version="1.0")
    assert err.value.version == "1.0"


def test_same_digest_under_another_name_is_refused(registry: Registry, acme: TestPublisher) -> None:
    first = publish(registry, acme, version="1.0.0")
    with Session(registry.engine) as s:
        ctx = context(registry, acme, registry.blobs.get(first.digest), s)
        step_parse(ctx)
        ctx.existing = None  # pretend it is a new package name with the same bytes
        with pytest.raises(DuplicateDigest) as err:
            step_dedupe(ctx)
    assert err.value.existing == "acme/summarizer 1.0.0"


def test_revoked_key_refuses_new_uploads_but_old_releases_keep_their_key(
    registry: Registry, acme: TestPublisher
) -> None:
    old = publish(registry, acme, version="1.0.0")
    registry.revoke_key(acme.principal, acme.key.key_id)
    with pytest.raises(RevokedKey):
        publish(registry, acme, version="1.1.0")
    assert registry.releases("acme/summarizer")[0].key_id == old.key_id


def test_lookalike_names_are_refused(registry: Registry, acme: TestPublisher) -> None:
    publish(registry, acme)
    with pytest.raises(LookalikeName) as err:
        publish(registry, acme, name="Acme/Summarizer", version="2.0")
    assert err.value.existing == "acme/summarizer"
    # The impersonating namespace is refused when claimed, whatever anyone downloaded.
    for spelling in ("acne", "acmee", "ACM3", "amce"):
        with pytest.raises(LookalikeName) as err:
            registry.register_publisher(f"squatter-{spelling}", spelling)
        assert (err.value.name, err.value.existing) == (spelling, "acme")
    mallory = make_publisher(registry, "mallory")
    with pytest.raises(LookalikeName):
        registry.add_namespace(mallory.principal, "acme1")
    assert registry.publisher("mallory").namespaces == ["mallory"]
    with pytest.raises(NotFound):
        registry.publisher("squatter-acne")
    # A publisher may hold neighbouring namespaces of their own.
    registry.add_namespace(acme.principal, "acme2")
    assert registry.publisher("acme").namespaces == ["acme", "acme2"]


def test_a_squatter_cannot_lock_an_owner_out(registry: Registry) -> None:
    """Look-alike namespaces held side by side (claimed before the claim-time rule existed):
    the squatter published the owner's package name first and inflated its downloads, which
    used to refuse the owner's own `acme/summarizer`. Now the owner's namespace decides."""
    before_the_rule = Registry(
        registry.engine, registry.blobs, RegistryConfig(lookalike_min_length=1000)
    )
    owner = make_publisher(before_the_rule, "acme")
    squatter = make_publisher(before_the_rule, "acmee")
    publish(registry, squatter, name="acmee/summarizer")
    for _ in range(50):
        registry.download("acmee/summarizer", "1.0.0")
    assert publish(registry, owner, name="acme/summarizer").name == "acme/summarizer"
    assert [p.name for p in registry.search("summarizer", sort="downloads").items] == [
        "acmee/summarizer", "acme/summarizer"
    ]


def test_the_owner_publishes_names_that_look_like_others_packages(
    registry: Registry, acme: TestPublisher
) -> None:
    """Nothing published in another namespace, however popular, refuses a name in one's own."""
    zeta = make_publisher(registry, "zeta")
    publish(registry, zeta, name="zeta/summarizer")
    for _ in range(50):
        registry.download("zeta/summarizer", "1.0.0")
    publish(registry, acme, name="acme/summarizer")
    publish(registry, acme, name="acme/summarizerr")
    assert {r.name for r in registry.search("", sort="recent").items} == {
        "zeta/summarizer", "acme/summarizer", "acme/summarizerr"
    }


def _crash(ctx: PublishContext) -> None:
    raise RuntimeError("power cut")


def test_crash_between_blob_write_and_commit_leaves_no_half_release(
    registry: Registry, acme: TestPublisher
) -> None:
    archive = make_archive()
    signature = sign(acme, archive, "acme/summarizer", "1.0.0")
    digest = hashlib.sha256(archive).hexdigest()
    steps = [*STEPS, ("crash", _crash)]  # index has flushed the rows; commit never happens
    with Session(registry.engine.execution_options(registry_write=True)) as s:
        ctx = context(registry, acme, archive, s, signature)
        with pytest.raises(RuntimeError):
            run_publish(ctx, steps)
    assert not registry.blobs.exists(digest)
    with Session(registry.engine) as s:
        assert s.exec(select(Release)).all() == []
    assert registry.search("summarizer").total == 0
    # The same upload goes through afterwards.
    assert registry.publish(acme.principal, archive, signature, acme.key.key_id).digest == digest


def test_process_killed_after_blob_write_leaves_only_an_orphan_blob(
    registry: Registry, acme: TestPublisher
) -> None:
    kept = publish(registry, acme, version="1.0.0")
    orphan_digest, _ = registry.blobs.put(make_archive(version="9.9"))  # no row ever committed
    assert registry.cleanup_blobs() == [orphan_digest]
    assert registry.blobs.exists(kept.digest) and not registry.blobs.exists(orphan_digest)


def test_failed_publish_keeps_a_blob_other_releases_use(db_url: str) -> None:
    registry = Registry(make_engine(db_url), MemoryBlobStore(), RegistryConfig())
    pub = make_publisher(registry, "acme")
    release = publish(registry, pub)
    with write_session(registry.engine) as s:
        ctx = context(registry, pub, registry.blobs.get(release.digest), s)
        ctx.blob_created = True  # as if this attempt had written it
        ctx.digest = release.digest
        from registry.publish import _discard_blob

        _discard_blob(ctx)
    assert registry.blobs.exists(release.digest)


def test_concurrent_publishes_keep_one_release_per_version(
    registry: Registry, acme: TestPublisher
) -> None:
    """8 writers race to create the package, publish 16 versions and all upload 2.0.0."""
    versions = [f"1.{i}.0" for i in range(16)]
    archives = {v: make_archive(version=v) for v in [*versions, "2.0.0"]}
    barrier = threading.Barrier(8)
    won: list[str] = []
    lost: list[str] = []
    errors: list[BaseException] = []

    def worker(mine: list[str]) -> None:
        barrier.wait()
        for version in [*mine, "2.0.0"]:
            archive = archives[version]
            try:
                registry.publish(acme.principal, archive,
                                 sign(acme, archive, "acme/summarizer", version),
                                 acme.key.key_id)
                won.append(version)
            except (DuplicateRelease, DuplicateDigest):
                lost.append(version)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(versions[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(won) == sorted([*versions, "2.0.0"]) and lost == ["2.0.0"] * 7
    releases = registry.releases("acme/summarizer")
    assert sorted(r.version for r in releases) == sorted(won)
    assert registry.package("acme/summarizer").latest_version == "2.0.0"
    assert all(registry.blobs.exists(r.digest) for r in releases)
    assert registry.cleanup_blobs() == []  # no upload left a blob behind
